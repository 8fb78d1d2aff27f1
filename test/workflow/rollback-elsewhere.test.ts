/**
 * A run whose workflow tasks run on a worker that is not the run's host (README "Many hosts"): the local
 * activities `restoreHere` and `checkpointHere` answer that they did nothing there, and the restore and the
 * checkpoints go to the host's queue as `restoreWorkspace` and `checkpointPhase`, exact as ever. Simulated
 * on one worker: an activity interceptor makes both answer as another host's would.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ActivityInboundCallsInterceptor } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rollbackRun, startRun } from '../../src/runs';
import { checkpointsQuery, statusQuery } from '../../src/shared/messages';
import { hostTaskQueue } from '../../src/shared/names';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { waitFor } from '../harness/gates';
import { localActivityType } from '../harness/history';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

/** `restoreHere` and `checkpointHere` as a worker of another host answers them; the rest as usual. */
const elsewhere = (): ActivityInboundCallsInterceptor => ({
  execute: (input, next) => {
    const type = Context.current().info.activityType;
    if (type === 'restoreHere') return Promise.resolve({ restored: false });
    if (type === 'checkpointHere') return Promise.resolve({ here: false });
    return next(input);
  },
});

describe('a run whose workflow tasks run off the run host', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker({
      workerOptions: { interceptors: { activity: [() => ({ inbound: elsewhere() })] } },
    });
  });
  afterAll(async () => t.close());

  it('restores through restoreWorkspace on the host queue, exactly, and the phase runs again', async () => {
    const workspace = tempDir('orch-rollback-elsewhere-');
    fs.writeFileSync(path.join(workspace, 'a.txt'), 'one\n');
    const spec = ProjectSpecSchema.parse({
      project: { name: 'rollback elsewhere' },
      phases: [
        {
          name: 'first',
          agents: [{ role: 'developer', backend: 'script', command: ['sh', '-c', 'echo first > first.txt'] }],
        },
        {
          name: 'second',
          agents: [
            {
              role: 'developer',
              backend: 'script',
              // Marks its start (not in any checkpoint: the restore must remove it), changes a file, adds
              // one, then waits for the release file.
              command: [
                'sh',
                '-c',
                'printf x >> started.txt; echo two > a.txt; echo new > b.txt; while [ ! -f release ]; do sleep 0.05; done',
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
    await waitFor(
      async () =>
        (await handle.query(checkpointsQuery)).some((c) => c.id === 'CP1') &&
        fs.existsSync(path.join(workspace, 'b.txt')),
      'the second phase changed the workspace',
    );
    const r = await rollbackRun(t.client, input.runId, 'CP1', 'test: off the host');
    expect(r).toEqual({ checkpoint: 'CP1', resumesAt: 'second' });
    // The rerun marks its start again: one mark means the restore removed the first.
    await waitFor(() => fs.existsSync(path.join(workspace, 'b.txt')), 'the second phase ran again');
    expect(fs.readFileSync(path.join(workspace, 'started.txt'), 'utf8')).toBe('x');
    fs.writeFileSync(path.join(workspace, 'release'), '');
    const summary = (await handle.result()) as { state: string };
    expect(summary.state).toBe('completed');
    expect((await handle.query(statusQuery)).rollbacks.map((x) => x.to)).toEqual(['CP1']);

    // The local activity ran and said no; the restore went to the host's queue.
    const history = await handle.fetchHistory();
    const steps = (history.events ?? []).flatMap((e) => {
      if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity')
        return [`local ${localActivityType(e)}`];
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) return [`activity ${scheduled.activityType?.name}`];
      return [];
    });
    const at = steps.indexOf('local restoreHere');
    expect(at).toBeGreaterThan(0);
    expect(steps[at + 1]).toBe('activity restoreWorkspace');
    const onHostQueue = (type: string) =>
      (history.events ?? [])
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type)
        .map((e) => e.activityTaskScheduledEventAttributes?.taskQueue?.name);
    const hostQueue = hostTaskQueue(t.taskQueue, t.config.host.id);
    expect(onHostQueue('restoreWorkspace')).toEqual([hostQueue]);
    // Each phase's checkpoint (the first's, the second's after the rollback) was asked here first, then
    // taken on the host.
    const phaseCheckpoints = steps.flatMap((s, i) =>
      s === 'local checkpointHere' ? [`${s} → ${steps[i + 1]}`] : [],
    );
    expect(phaseCheckpoints).toEqual(Array(2).fill('local checkpointHere → activity checkpointPhase'));
    const checkpointQueues = onHostQueue('checkpointPhase');
    expect(checkpointQueues.length).toBeGreaterThanOrEqual(2);
    expect(new Set(checkpointQueues)).toEqual(new Set([hostQueue]));
    const live = (await handle.query(checkpointsQuery)).filter((c) => !c.rolledBack);
    expect(live.filter((c) => c.phase !== undefined && c.id !== 'CP0').map((c) => c.phase)).toEqual([
      'first',
      'second',
    ]);
  });
});
