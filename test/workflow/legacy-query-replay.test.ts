/**
 * The sdk-core legacy-query reordering (workflows/interceptors.ts) reproduced with the smallest workflow
 * (test/harness/legacy-query-workflow.ts), on the real dev server, and the guard that keeps our histories
 * replayable:
 *
 * 1. worker A (its own process) starts the workflow's 8 s timer and is SIGKILLed; worker B starts;
 * 2. a query, sent before the timer fires, waits on A's dead sticky queue (10 s); meanwhile the timer
 *    fires and the next workflow task waits there too (10 s);
 * 3. the server hands the query to B, which has no cache of the run: sdk-core replays the history for
 *    the query, fired timer included, and runs the timer's continuation (it schedules `tick`);
 * 4. a `bump` update arrives while the task still waits; then B gets the task and completes it.
 *
 * Without the guard, B answers the query and completes the task with `ScheduleActivityTask` before the
 * update's acceptance; a replay accepts the update first and fails with "Update machine does not handle
 * this event: ActivityTaskScheduled". With it, B refuses the early activation (the query fails with a
 * message saying to retry), rebuilds the run at the task, and the history replays.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOW_INTERCEPTORS } from '../../scripts/build-lib.mjs';
import { EARLY_EVENTS_MESSAGE } from '../../workflows/interceptors';
import { waitFor } from '../harness/gates';
import { bumpsQuery, bumpUpdate, type legacyQueryWorkflow } from '../harness/legacy-query-workflow';
import { createTestEnv, forwardOutput, tempDir, type TestEnv } from '../harness/temporal';

const WORKFLOW = path.resolve(import.meta.dirname, '../harness/legacy-query-workflow.ts');
const WORKER = path.resolve(import.meta.dirname, '../harness/legacy-query-worker.ts');
/** How long A's sticky queue holds the task after A dies: the window in which B answers queries. */
const STICKY_MS = 10_000;

let t: TestEnv;
const bundles: { guarded: string; unguarded: string } = { guarded: '', unguarded: '' };

beforeAll(async () => {
  t = await createTestEnv();
  const dir = tempDir('orch-legacy-query-');
  const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
  for (const kind of ['guarded', 'unguarded'] as const) {
    const { code } = await bundleWorkflowCode({
      workflowsPath: WORKFLOW,
      workflowInterceptorModules: kind === 'guarded' ? [WORKFLOW_INTERCEPTORS] : [],
      logger: quiet,
    });
    bundles[kind] = path.join(dir, `${kind}.js`);
    fs.writeFileSync(bundles[kind], code);
  }
});
afterAll(async () => {
  await t?.close();
});

type History = temporal.api.history.v1.IHistory;

const has = (h: History, key: keyof temporal.api.history.v1.IHistoryEvent) =>
  (h.events ?? []).some((e) => e[key] != null);

/** Event kinds after the timer fired, in order, without the workflow task bookkeeping. */
function afterTimer(h: History): string[] {
  const events = h.events ?? [];
  const fired = events.findIndex((e) => e.timerFiredEventAttributes != null);
  return events
    .slice(fired + 1)
    .map((e) =>
      e.activityTaskScheduledEventAttributes
        ? 'ActivityTaskScheduled'
        : e.workflowExecutionUpdateAcceptedEventAttributes
          ? 'UpdateAccepted'
          : '',
    )
    .filter((k) => k !== '');
}

async function startWorkerA(codePath: string, taskQueue: string) {
  const a = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: t.config.temporal.address,
      LQ_TASK_QUEUE: taskQueue,
      LQ_BUNDLE: codePath,
      LQ_STICKY_MS: String(STICKY_MS),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  forwardOutput(a.stderr);
  await new Promise<void>((resolve, reject) => {
    a.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    a.once('exit', (code) => reject(new Error(`worker A exited with ${code}`)));
  });
  return a;
}

/** Steps 1–4 above with one bundle; the history the two workers wrote, and the first query's outcome. */
async function scenario(codePath: string): Promise<{ history: History; firstQuery: string; result: number }> {
  const taskQueue = `legacy-query-${randomUUID()}`;
  const a = await startWorkerA(codePath, taskQueue);
  const handle: WorkflowHandle<typeof legacyQueryWorkflow> = await t.client.workflow.start(
    'legacyQueryWorkflow',
    { taskQueue, workflowId: `legacy-query-${randomUUID()}` },
  );
  const history = () => handle.fetchHistory();
  await waitFor(async () => has(await history(), 'timerStartedEventAttributes'), 'the timer started');
  a.kill('SIGKILL');
  await new Promise((r) => a.once('exit', r));
  // Sent before the timer fires, the query waits STICKY_MS on A's sticky queue; then the server hands it
  // to B with the history as it is by then: the timer fired, its task still waiting for A.
  const query = handle.query(bumpsQuery).then(
    (n) => `answered ${n}`,
    (err: unknown) => `refused: ${err instanceof Error ? err.message : String(err)}`,
  );
  expect(has(await history(), 'timerFiredEventAttributes')).toBe(false);

  const b = await Worker.create({
    connection: t.nativeConnection,
    taskQueue,
    workflowBundle: { codePath },
    activities: { tick: () => Promise.resolve() },
  });
  const running = b.run();
  try {
    const firstQuery = await query;
    const then = await history();
    expect(has(then, 'timerFiredEventAttributes')).toBe(true);
    // The task has not started yet: the update goes into it.
    expect(has(then, 'workflowTaskTimedOutEventAttributes')).toBe(false);
    await handle.executeUpdate(bumpUpdate);
    const result = await handle.result();
    return { history: await history(), firstQuery, result };
  } finally {
    b.shutdown();
    await running;
  }
}

describe('a query that reaches a worker while the next workflow task waits (sdk-core legacy query)', () => {
  it(
    'without the guard: the task schedules the activity before accepting the update, and its replay fails (the SDK bug, pinned)',
    { timeout: 120_000 },
    async () => {
      const { history, firstQuery } = await scenario(bundles.unguarded);
      expect(firstQuery).toBe('answered 0');
      expect(afterTimer(history)).toEqual(['ActivityTaskScheduled', 'UpdateAccepted']);
      const replayed = Worker.runReplayHistory(
        { workflowBundle: { codePath: bundles.unguarded }, replayName: 'legacy-query-unguarded' },
        history,
      );
      await expect(replayed).rejects.toBeInstanceOf(DeterminismViolationError);
      await expect(replayed).rejects.toThrow(
        /Update machine does not handle this event: .*ActivityTaskScheduled/,
      );
    },
  );

  it(
    'with workflows/interceptors.ts: the query is refused with a message to retry, the update is accepted first, and the history replays',
    { timeout: 120_000 },
    async () => {
      const { history, firstQuery, result } = await scenario(bundles.guarded);
      expect(firstQuery).toContain(EARLY_EVENTS_MESSAGE.slice(0, 60));
      expect(result).toBe(1);
      expect(afterTimer(history)).toEqual(['UpdateAccepted', 'ActivityTaskScheduled']);
      await Worker.runReplayHistory(
        { workflowBundle: { codePath: bundles.guarded }, replayName: 'legacy-query-guarded' },
        history,
      );
    },
  );
});
