/**
 * A run whose host is lost before its first checkpoint (README "Many hosts"): nothing of the run is on
 * that host but its empty setup, so the run claims another host and sets up there, as if it had been
 * placed there first, instead of failing. The lost host is simulated: a worker whose claimHost names a
 * host id no worker polls (its activities' config differs from its own), then stops; a normal worker
 * takes over.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkRun, startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import type { ProjectSummary } from '../../workflows/project';
import { waitFor } from '../harness/gates';
import {
  createTestEnv,
  spawnWorkerProcess,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

describe('a host lost before the first checkpoint', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    await t.close();
  });

  it('sets the run up on another host and completes', async () => {
    const ghost = { ...t.config, host: { ...t.config.host, id: 'ghost', moveAfterMs: 3_000 } };
    const g = await t.startWorker({ deps: { config: ghost } });
    const workspace = tempDir('orch-host-setup-ws-');
    fs.writeFileSync(path.join(workspace, 'in.txt'), 'input\n');
    const input = await startRun(t.client, {
      spec: ProjectSpecSchema.parse({
        project: { name: 'setup moves' },
        phases: [
          {
            name: 'development',
            agents: [{ role: 'developer', backend: 'script', command: ['sh', '-c', 'cp in.txt out.txt'] }],
            artifacts: [{ pattern: 'out.txt' }],
          },
        ],
      }),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    // Placed on the ghost host, whose queue no worker polls: its setup waits there.
    await waitFor(
      async () => (await handle.query<{ host?: string }>('status')).host === 'ghost' || undefined,
      'placed on the ghost host',
      120_000,
    );
    g.worker.shutdown();
    await g.running;
    await t.startWorker();

    const summary = (await handle.result()) as ProjectSummary;
    expect(summary.state).toBe('completed');
    const live = t.config.host.id;
    expect((await handle.query<{ host?: string }>('status')).host).toBe(live);
    expect(fs.readFileSync(path.join(workspace, 'out.txt'), 'utf8')).toBe('input\n');
    const audit = fs
      .readFileSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; details: Record<string, unknown> });
    const hostEvents = audit.filter((e) => e.kind === 'host').map((e) => e.details);
    expect(hostEvents.map((d) => [d.event, d.host ?? d.from, d.to, d.during])).toEqual([
      ['placed', 'ghost', undefined, undefined],
      ['moved', 'ghost', live, 'setup'],
    ]);
    // CP0 was taken once, on the live host.
    expect(audit.filter((e) => e.kind === 'checkpoint' && e.details.id === 'CP0')).toHaveLength(1);
  }, 300_000);
});

describe('a fork', () => {
  let t: TestEnv;
  let b: ChildProcess | undefined;
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    if (b && b.exitCode === null && b.signalCode === null) {
      b.kill('SIGTERM');
      await new Promise((r) => b!.once('exit', r));
    }
    await t.close();
  });

  it("is set up on its parent's host, whoever answers its claim", async () => {
    const as = (id: string) => ({ ...t.config, host: { ...t.config.host, id } });
    // The parent runs on host A.
    const a1 = await t.startWorker({ config: as('host-a') });
    const workspace = tempDir('orch-fork-src-');
    fs.writeFileSync(path.join(workspace, 'in.txt'), 'input\n');
    const spec = ProjectSpecSchema.parse({
      project: { name: 'fork source' },
      phases: [
        {
          name: 'development',
          agents: [{ role: 'developer', backend: 'script', command: ['sh', '-c', 'cp in.txt out.txt'] }],
          artifacts: [{ pattern: 'out.txt' }],
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
    // Now every claim is answered "host B" (A's claimHost too), while A still serves its own queue.
    a1.worker.shutdown();
    await a1.running;
    await t.startWorker({ config: as('host-a'), deps: { config: as('host-b') } });
    // B is a process of its own: one process registers one worker per task queue.
    b = spawnWorkerProcess(t, { LOG_LEVEL: 'error', ORCHESTRATOR_HOST_ID: 'host-b' });
    await waitUntilPolling(t, b.pid!);
    const fork = await forkRun(t.client, {
      runId: parent.runId,
      checkpoint: 'CP0',
      workspace: path.join(tempDir('orch-fork-dst-'), 'ws'),
      taskQueue: t.taskQueue,
    });
    expect(fork.forkedFrom?.host).toBe('host-a');
    const handle = t.client.workflow.getHandle(fork.runId);
    expect(((await handle.result()) as ProjectSummary).state).toBe('completed');
    expect((await handle.query<{ host?: string }>('status')).host).toBe('host-a');
    // Every step that touches the fork's workspace went to A's queues.
    const queues = new Set<string>();
    for (const e of (await handle.fetchHistory()).events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      const type = s?.activityType?.name ?? '';
      if (['materializeCheckpoint', 'initWorkspace', 'checkpointPhase', 'scriptTurn'].includes(type))
        queues.add(`${type} ${s?.taskQueue?.name ?? ''}`);
    }
    const hostA = `${t.taskQueue}-host-host-a`;
    expect([...queues].sort()).toEqual(
      [
        `checkpointPhase ${hostA}`,
        `initWorkspace ${hostA}`,
        `materializeCheckpoint ${hostA}`,
        `scriptTurn ${hostA}-agents`,
      ].sort(),
    );
  }, 300_000);
});
