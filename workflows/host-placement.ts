/**
 * Where a run's or a team's workspace lives (README "Many hosts"), the pieces both workflows share:
 * `claimHost` and `adoptWorkspace` on the shared queue (any live worker answers), and the activity options
 * that send a step to the host's own queue. Deterministic.
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { HostPlacement } from '../activities/host';
import { HEARTBEAT_TIMEOUT, retryPolicy } from '../src/shared/failures';

export type { HostPlacement };

/** Where a workspace lives: `claimHost` and `adoptWorkspace` on the shared queue (any live worker). */
export const hosts = proxyActivities<Pick<Activities, 'claimHost' | 'adoptWorkspace'>>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: retryPolicy(),
});

/**
 * `claimHost` as a local activity: answered by the worker running the workflow task, which polls the
 * shared queue as any host does, within the workflow task (no round trip through the server).
 */
export const localHosts = proxyLocalActivities<Pick<Activities, 'claimHost'>>({
  startToCloseTimeout: '10 seconds',
  retry: retryPolicy(),
});

/**
 * The activity options that place a step on a host (its queue, and the time the host may be gone, no
 * worker taking the step, before the step fails with a ScheduleToStart timeout and the run moves). None
 * without a host (started before hosts existed): the shared queue, as before.
 */
export function hostPlacement(host: Pick<HostPlacement, 'queue' | 'moveAfterMs'> | undefined): {
  taskQueue?: string;
  scheduleToStartTimeout?: number;
} {
  return host ? { taskQueue: host.queue, scheduleToStartTimeout: host.moveAfterMs } : {};
}
