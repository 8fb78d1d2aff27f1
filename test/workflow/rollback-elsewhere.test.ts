/**
 * A rollback whose workflow task runs on a worker that is not the run's host (README "Many hosts"): the
 * local activity `restoreHere` answers `restored: false` there, touching nothing, and the restore goes to
 * the host's queue as `restoreWorkspace`, exact as ever. Simulated on one worker: an activity interceptor
 * makes its `restoreHere` answer as another host's would.
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
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

/** `restoreHere` as a worker of another host answers it; every other activity as usual. */
const elsewhere = (): ActivityInboundCallsInterceptor => ({
  execute: (input, next) =>
    Context.current().info.activityType === 'restoreHere'
      ? Promise.resolve({ restored: false })
      : next(input),
});

describe('a rollback whose workflow task runs off the run host', () => {
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
      const marker = e.markerRecordedEventAttributes;
      if (marker?.markerName === 'core_local_activity') {
        const data = marker.details?.data?.payloads?.[0]?.data;
        const meta = data
          ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string })
          : {};
        return [`local ${meta.activity_type}`];
      }
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled) return [`activity ${scheduled.activityType?.name}`];
      return [];
    });
    const at = steps.indexOf('local restoreHere');
    expect(at).toBeGreaterThan(0);
    expect(steps[at + 1]).toBe('activity restoreWorkspace');
    const restore = (history.events ?? []).find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'restoreWorkspace',
    );
    expect(restore?.activityTaskScheduledEventAttributes?.taskQueue?.name).toBe(
      hostTaskQueue(t.taskQueue, t.config.host.id),
    );
  });
});
