/**
 * The activity proxies `projectWorkflow` calls, with their timeouts and retry policies. Retries by cause
 * (src/shared/failures): infrastructure failures retry without limit, the rest fail at once.
 */
import { ActivityCancellationType, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { HostPlacement } from '../../activities/host';
import { hostPlacement } from '../host-placement';
import { HEARTBEAT_TIMEOUT, retryPolicy, SHORT_ACTIVITY_TIMEOUT } from '../../src/shared/failures';

// Every workspace activity heartbeats every second, so a worker that dies mid-checkpoint or mid-restore
// is noticed after HEARTBEAT_TIMEOUT, not after the start-to-close timeout.
export const workspace = proxyActivities<
  Pick<
    Activities,
    | 'initWorkspace'
    | 'restoreWorkspace'
    | 'materializeCheckpoint'
    | 'updateRunManifest'
    | 'snapshotWorkspace'
    | 'writeOutput'
    | 'readCheckpointCommit'
  >
>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: retryPolicy(),
});

/**
 * A rollback's restore as a local activity (../../activities/host `restoreHere`): run by the worker that
 * runs the workflow task, when it is the run's host. No heartbeat: a worker that dies mid-restore is
 * noticed when the workflow task times out (RUN_WORKFLOW_TASK_TIMEOUT), and the next attempt restores
 * exactly from whatever it left.
 */
export const localRestore = proxyLocalActivities<Pick<Activities, 'restoreHere'>>({
  startToCloseTimeout: '10 minutes',
  retry: retryPolicy(),
});

/**
 * A phase's checkpoint as a local activity (../../activities `checkpointHere`), like {@link localRestore}:
 * run by the worker that runs the workflow task when it is the run's host. A worker that dies mid-checkpoint
 * is noticed when the workflow task times out, and the next attempt checkpoints again (it is idempotent:
 * the same tree, the same manifest, audit appends by seq).
 */
export const localCheckpoint = proxyLocalActivities<Pick<Activities, 'checkpointHere'>>({
  startToCloseTimeout: '10 minutes',
  retry: retryPolicy(),
});

export const checkpointing = proxyActivities<Pick<Activities, 'checkpointPhase'>>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: retryPolicy(),
});

export const governance = proxyActivities<Pick<Activities, 'evaluateGates'>>({
  // Tool gates run test suites (their own timeouts bound them); the activity heartbeats every few seconds.
  // Explicit: unset, the SDK sends TRY_CANCEL and a rollback would not wait for the gate's process to end.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  // A failing gate is not an activity failure: its verdict is counted by the gate's on_fail policy.
  retry: retryPolicy(),
});

export const meter = proxyActivities<Pick<Activities, 'readMeter'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});

/** What an agent start was served, from its meter (see activities/meter). */
export type MeterSummary = Awaited<ReturnType<Activities['readMeter']>>;

/** What the gate activity returns. */
export type GateEvaluation = Awaited<ReturnType<Activities['evaluateGates']>>;

export { hosts, hostPlacement, localHosts } from '../host-placement';

/**
 * The proxies of the steps that touch the workspace, on the run's host. For a run without a host they
 * equal {@link workspace}, {@link checkpointing} and {@link governance}.
 */
export function onHost(host: HostPlacement | undefined) {
  if (!host) return { workspace, checkpointing, governance };
  const placed = hostPlacement(host);
  return {
    workspace: proxyActivities<
      Pick<Activities, 'initWorkspace' | 'restoreWorkspace' | 'materializeCheckpoint' | 'snapshotWorkspace'>
    >({
      ...placed,
      startToCloseTimeout: '10 minutes',
      heartbeatTimeout: HEARTBEAT_TIMEOUT,
      retry: retryPolicy(),
    }),
    checkpointing: proxyActivities<Pick<Activities, 'checkpointPhase'>>({
      ...placed,
      startToCloseTimeout: '10 minutes',
      heartbeatTimeout: HEARTBEAT_TIMEOUT,
      retry: retryPolicy(),
    }),
    governance: proxyActivities<Pick<Activities, 'evaluateGates'>>({
      ...placed,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      startToCloseTimeout: '2 hours',
      heartbeatTimeout: HEARTBEAT_TIMEOUT,
      retry: retryPolicy(),
    }),
  };
}
