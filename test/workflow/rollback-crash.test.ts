/**
 * A worker SIGKILLed while a rollback's restore runs: the restore is a local activity of the run's workflow
 * task (workflows/project/rollback LOCAL_RESTORE_PATCH), so the task times out, the next worker replays the
 * run and restores again from whatever the dead one left, and the workspace is exactly the checkpoint's.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun } from '../../src/runs';
import { checkpointsQuery, rollbackUpdate } from '../../src/shared/messages';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { waitFor } from '../harness/gates';
import {
  createTestEnv,
  spawnWorkerProcess,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

/** Enough files that rewriting them takes long enough to be caught half-way. */
const FILES = 4_000;
const name = (i: number) => `d${String(i % 40).padStart(2, '0')}/f${String(i).padStart(5, '0')}.txt`;
const content = (i: number) => `${i}\n`.repeat(800);

describe('a worker killed mid-restore', () => {
  let t: TestEnv;
  let worker: ChildProcess | undefined;
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    worker?.kill('SIGTERM');
    await t.close();
  });

  it('the next worker restores again, exactly, and the run completes', async () => {
    worker = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
    await waitUntilPolling(t, worker.pid!);
    const workspace = tempDir('orch-rollback-crash-');
    for (let i = 0; i < FILES; i++) {
      fs.mkdirSync(path.join(workspace, path.dirname(name(i))), { recursive: true });
      fs.writeFileSync(path.join(workspace, name(i)), content(i));
    }
    const spec = ProjectSpecSchema.parse({
      project: { name: 'rollback crash' },
      phases: [
        { name: 'first', agents: [{ role: 'dev', backend: 'script', command: ['sh', '-c', 'true'] }] },
        {
          name: 'second',
          agents: [
            {
              role: 'dev',
              backend: 'script',
              command: [
                'sh',
                '-c',
                'printf x >> started.txt; while [ ! -f go ]; do sleep 0.05; done; mkdir -p zz; echo new > zz/new.txt; for f in d*/f*.txt; do echo x > "$f"; done; echo done > changed.txt; while [ ! -f release ]; do sleep 0.05; done',
              ],
            },
          ],
        },
      ],
    });
    const input = await startRun(t.client, {
      spec,
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    // The agent waits for `go` (every run of it: the restore removes the file) before it changes anything.
    await waitFor(
      () => fs.existsSync(path.join(workspace, 'started.txt')),
      'the second phase started',
      120_000,
    );
    fs.writeFileSync(path.join(workspace, 'go'), '');
    await waitFor(
      async () =>
        (await handle.query(checkpointsQuery)).some((c) => c.id === 'CP1') &&
        fs.existsSync(path.join(workspace, 'changed.txt')),
      'the second phase changed every file',
      120_000,
    );
    const update = handle
      .executeUpdate(rollbackUpdate, { args: [{ checkpoint: 'CP1', reason: 'test: crash mid-restore' }] })
      .then(
        () => 'ok',
        (err: unknown) => String(err),
      );
    // The restore removes what the target lacks first, then rewrites the files in order: caught between
    // the first file restored and the last.
    const first = path.join(workspace, name(0));
    const last = path.join(workspace, name(FILES - 1));
    const read = (f: string) => {
      try {
        return fs.readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    };
    await waitFor(
      () => !fs.existsSync(path.join(workspace, 'zz')) && read(first) !== 'x\n' && read(last) === 'x\n',
      'the restore half-way',
      60_000,
    );
    worker.kill('SIGKILL');
    const half = [...Array(FILES).keys()].filter((i) => read(path.join(workspace, name(i))) === 'x\n').length;
    expect(half).toBeGreaterThan(0);
    expect(half).toBeLessThan(FILES);

    worker = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
    await waitUntilPolling(t, worker.pid!);
    expect(await update).toBe('ok');
    // Exactly CP1 (the rerun waits for `go`): every file back, what the agent added gone, its start mark
    // too (one mark now: the rerun's).
    await waitFor(
      () => fs.existsSync(path.join(workspace, 'started.txt')),
      'the second phase ran again',
      120_000,
    );
    expect(read(path.join(workspace, 'started.txt'))).toBe('x');
    for (const gone of ['zz', 'go', 'changed.txt'])
      expect(fs.existsSync(path.join(workspace, gone))).toBe(false);
    const wrong = [...Array(FILES).keys()].filter((i) => read(path.join(workspace, name(i))) !== content(i));
    expect(wrong).toEqual([]);
    fs.writeFileSync(path.join(workspace, 'go'), '');
    fs.writeFileSync(path.join(workspace, 'release'), '');
    const summary = (await handle.result()) as { state: string; rollbacks: unknown[] };
    expect(summary.state).toBe('completed');
    expect(summary.rollbacks).toHaveLength(1);
    // The dead worker's workflow task timed out; the next one ran the restore to its end.
    const history = await handle.fetchHistory();
    const types = (history.events ?? []).map((e) => String(e.eventType));
    expect(types.some((x) => /WORKFLOW_TASK_TIMED_OUT|WorkflowTaskTimedOut|^7$/.test(x))).toBe(true);
  }, 300_000);
});
