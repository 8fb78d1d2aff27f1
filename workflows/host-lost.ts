/**
 * How a workflow knows its run's host is gone: a step sent to the host's queue (activities/host) waited
 * longer than the host's move time for a worker to take it, so Temporal failed it with a ScheduleToStart
 * timeout. Only steps placed on a host have that timeout, so nothing else looks like this. Deterministic.
 */
import { TimeoutFailure } from '@temporalio/workflow';

/**
 * Whether `err` (an activity's or a child workflow's failure, at any depth of causes) says the run's host
 * was gone past its move time.
 */
export function isHostLost(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 10; depth++) {
    if (e instanceof TimeoutFailure && e.timeoutType === 'SCHEDULE_TO_START') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
