/**
 * Workflow interceptors every bundle of ours registers (scripts/build-lib.mjs passes this module as a
 * `workflowInterceptorModules` entry, so workers and the replay tests run the same code).
 *
 * ## Why: an sdk-core legacy-query path that writes histories no replay can reproduce
 * Seen with `@temporalio/*` 1.24.0 (test/workflow/legacy-query-replay.test.ts reproduces it): a worker
 * that does not have a run cached gets a query (a "legacy" query task) while the run's next workflow task
 * is scheduled but not started, e.g. for the 10 s its dead predecessor's sticky queue holds it. The history
 * it replays for the query ends with events no workflow task has started yet (a fired timer, a completed
 * activity). sdk-core applies them anyway, in an activation of their own, and keeps the result: the
 * timer's continuation has already issued its commands (say `appendAudit`) when the real workflow task
 * arrives with an update in it. So the worker completes that task with `ScheduleActivityTask` before
 * `UpdateAccepted`. A replay delivers the fired timer and the update in ONE activation, where the SDK runs
 * the update first: `[TMPRL1100] Update machine does not handle this event: ActivityTaskScheduled`, on
 * every later query or cache miss. No workflow code can make both orders the same (the SDK accepts an
 * update before anything else of its activation runs), and the history does not record which order the
 * worker saw.
 *
 * ## What this does
 * That early activation is recognisable: it applies new history (the history length grew) at the
 * workflow time of the previous activation, because no new workflow task started (a real task always
 * moves the time to its own start). Such an activation is refused before any job runs: the query fails
 * (a client retries; while the task waits this repeats), sdk-core evicts the run, and the next workflow
 * task rebuilds it from the full history, in the same activations a replay uses. Nothing is written to
 * history and no command changes, so no `patched()` is involved; replays never take this path (they are
 * all "replaying" activations).
 */
import type { WorkflowInterceptorsFactory } from '@temporalio/workflow';

/** What the guard remembers of the last non-query activation. */
export interface ActivationMark {
  /** The activation's workflow time, exactly (`seconds:nanos`), or '' when it had none. */
  time: string;
  historyLength: number;
}

/** The parts of an activation the guard reads (`coresdk.workflow_activation.IWorkflowActivation`). */
export interface ActivationFacts {
  isReplaying?: boolean | null;
  historyLength?: number | null;
  timestamp?: { seconds?: { toString(): string } | number | null; nanos?: number | null } | null;
  jobs?: readonly { queryWorkflow?: unknown }[] | null;
}

/** The message of the refused activation (and of the failed query a client sees). */
export const EARLY_EVENTS_MESSAGE =
  'refused an activation that applies history events no workflow task has started (a query reached a ' +
  'worker without this run cached while its next workflow task waited; sdk-core would keep commands ' +
  'that a replay orders differently): the worker evicts the run and rebuilds it at the next workflow ' +
  'task. Retry the query.';

/** The mark of an activation, or undefined for a query-only activation (it applies no history). */
export function markOf(a: ActivationFacts): ActivationMark | undefined {
  const jobs = a.jobs ?? [];
  if (jobs.length > 0 && jobs.every((j) => j.queryWorkflow != null)) return undefined;
  const ts = a.timestamp;
  const time = ts ? `${String(ts.seconds ?? 0)}:${ts.nanos ?? 0}` : '';
  return { time, historyLength: a.historyLength ?? 0 };
}

/**
 * Whether `next` applies events that no workflow task started: not replaying, more history than the
 * previous activation, and the same workflow time. Pure, so that the rule is unit-tested.
 */
export function appliesUnstartedEvents(prev: ActivationMark | undefined, next: ActivationFacts): boolean {
  const mark = markOf(next);
  if (!prev || !mark || next.isReplaying) return false;
  return mark.historyLength > prev.historyLength && mark.time !== '' && mark.time === prev.time;
}

/** One guard per workflow execution: the SDK calls this factory when it creates the execution. */
export const interceptors: WorkflowInterceptorsFactory = () => {
  let prev: ActivationMark | undefined;
  return {
    internals: [
      {
        activate(input, next) {
          if (input.batchIndex === 0) {
            if (appliesUnstartedEvents(prev, input.activation)) throw new Error(EARLY_EVENTS_MESSAGE);
            prev = markOf(input.activation) ?? prev;
          }
          next(input);
        },
      },
    ],
  };
};
