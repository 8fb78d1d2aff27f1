/**
 * A fork whose parent's host is gone (README "Many hosts", issue #15): the parent's workspace exists only
 * on that host, so the fork, placed there, waits the move time, then is set up on a live host from the
 * checkpoint store every host reaches (`adoptWorkspace` with the parent as source), and completes there.
 * Two worker processes act as two hosts: each its own host id and its own disk at the parent's workspace
 * path (a mount namespace of its own, as test/workflow/team-host.test.ts does), one checkpoint store.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkRun, startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import type { ProjectSummary } from '../../workflows/project';
import {
  createTestEnv,
  onDisk,
  spawnWorkerProcess,
  stopWorkers,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

/** Every file and directory under `root` (not `.orchestrator/`): path → content, or `dir`, and mode. */
function walk(root: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
    if (!rel && name === '.orchestrator') continue;
    const p = path.join(rel, name);
    const st = fs.lstatSync(path.join(root, p));
    const mode = (st.mode & 0o777).toString(8);
    if (st.isDirectory()) {
      out[`${p}/`] = `dir ${mode}`;
      Object.assign(out, walk(root, p));
    } else out[p] = `${fs.readFileSync(path.join(root, p), 'utf8')} ${mode}`;
  }
  return out;
}

const treeOf = (repo: string, ref: string): string =>
  execFileSync('git', [`--git-dir=${repo}`, 'rev-parse', `${ref}^{tree}`], { encoding: 'utf8' }).trim();

describe("a fork whose parent's host is gone", () => {
  let t: TestEnv;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    await stopWorkers(workers);
    await t.close();
  });

  it('is set up on a live host from the checkpoint store after the move time', async () => {
    const shared = tempDir('orch-fork-lost-ws-');
    const disks = { a: tempDir('orch-fork-lost-a-'), b: tempDir('orch-fork-lost-b-') };
    const store = tempDir('orch-fork-lost-store-');
    const workspace = path.join(shared, 'ws');
    fs.mkdirSync(workspace);
    fs.mkdirSync(path.join(disks.a, 'ws'));
    fs.writeFileSync(path.join(disks.a, 'ws', 'in.txt'), 'input\n');
    const host = (id: 'a' | 'b') =>
      spawnWorkerProcess(
        t,
        {
          LOG_LEVEL: 'error',
          ORCHESTRATOR_HOST_ID: `host-${id}`,
          ORCHESTRATOR_CHECKPOINT_STORE: store,
          ORCHESTRATOR_HOST_MOVE_AFTER_S: '3',
        },
        onDisk(disks[id], shared),
      );
    const a = host('a');
    workers.push(a);
    await waitUntilPolling(t, a.pid!);
    const spec = ProjectSpecSchema.parse({
      project: { name: 'fork from the store' },
      phases: [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'script',
              command: [
                'sh',
                '-c',
                'cp in.txt out.txt && mkdir -p sub/empty && printf "#!/bin/sh\\n" > sub/run.sh && chmod 750 sub/run.sh',
              ],
            },
          ],
          artifacts: [{ pattern: 'out.txt' }],
        },
        {
          name: 'review',
          agents: [
            {
              role: 'reviewer',
              backend: 'script',
              command: ['sh', '-c', 'cat out.txt > later.txt && echo changed > out.txt'],
            },
          ],
          artifacts: [{ pattern: 'later.txt' }],
        },
      ],
    });
    const parent = await startRun(t.client, {
      spec,
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    expect(((await t.client.workflow.getHandle(parent.runId).result()) as ProjectSummary).state).toBe(
      'completed',
    );
    // The parent's CP1 on A's disk, as the store has it; then A is gone for good.
    const parentRepo = path.join(store, `${parent.runId}.git`);
    const cp1Tree = treeOf(parentRepo, 'refs/checkpoints/CP1');
    a.kill('SIGKILL');
    await new Promise((r) => (a.exitCode !== null || a.signalCode !== null ? r(null) : a.once('exit', r)));
    const b = host('b');
    workers.push(b);
    await waitUntilPolling(t, b.pid!);

    const target = path.join(tempDir('orch-fork-lost-dst-'), 'ws');
    const fork = await forkRun(t.client, {
      runId: parent.runId,
      checkpoint: 'CP1',
      workspace: target,
      taskQueue: t.taskQueue,
    });
    expect(fork.forkedFrom?.host).toBe('host-a');
    const handle = t.client.workflow.getHandle(fork.runId);
    const summary = (await handle.result()) as ProjectSummary;
    expect(summary.state).toBe('completed');
    expect((await handle.query<{ host?: string }>('status')).host).toBe('host-b');

    // The fork's CP1 is the parent's CP1, file for file (the same tree), and its workspace is CP1 with
    // the review phase run again on it: later.txt is CP1's out.txt, not the parent's final one.
    expect(treeOf(path.join(store, `${fork.runId}.git`), 'refs/checkpoints/CP1')).toBe(cp1Tree);
    expect(walk(target)).toEqual({
      'in.txt': 'input\n 644',
      'later.txt': 'input\n 644',
      'out.txt': 'changed\n 644',
      'sub/': 'dir 755',
      'sub/empty/': 'dir 755',
      'sub/run.sh': '#!/bin/sh\n 750',
    });
    // B never saw the parent's workspace (it is on A's disk only).
    expect(fs.readdirSync(disks.b)).toEqual([]);

    const audit = fs
      .readFileSync(path.join(t.config.outputsDir, fork.runId, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; details: Record<string, unknown> });
    const hostEvents = audit.filter((e) => e.kind === 'host').map((e) => e.details);
    expect(hostEvents.map((d) => [d.event, d.host ?? d.from, d.to, d.during])).toEqual([
      ['placed', 'host-a', undefined, undefined],
      ['moved', 'host-a', 'host-b', 'setup'],
    ]);
    expect(hostEvents[1]!.fromStore).toEqual({
      runId: parent.runId,
      checkpoint: 'CP1',
      commit: fork.forkedFrom!.commit,
    });
    // The setup waited on A's queue, then the store restore ran on B, and nothing was materialized there.
    const started: string[] = [];
    const scheduled = new Map<string, string>();
    for (const e of (await handle.fetchHistory()).events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), `${s.activityType?.name ?? ''} ${s.taskQueue?.name ?? ''}`);
      const st = e.activityTaskStartedEventAttributes;
      if (st) started.push(`${scheduled.get(String(st.scheduledEventId))} ${st.identity?.split('@')[0]}`);
    }
    const hostB = `${t.taskQueue}-host-host-b`;
    expect(started.filter((s) => /^(materializeCheckpoint|adoptWorkspace|initWorkspace) /.test(s))).toEqual([
      `adoptWorkspace ${t.taskQueue} ${b.pid}`,
      `initWorkspace ${hostB} ${b.pid}`,
    ]);
  }, 600_000);
});
