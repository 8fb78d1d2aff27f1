/**
 * The server decides how a run ended. A query replays the workflow, which never sees a termination or a
 * timeout (its last state stays `running`), so every reader combines the two the same way here.
 */
import type { RunState } from './shared/run';

/** Our state for a closed execution's server status; undefined while it runs (or continued as new). */
export function stateFromServer(status: string): RunState | undefined {
  switch (status) {
    case 'COMPLETED':
      return 'completed';
    case 'FAILED':
      return 'failed';
    case 'CANCELLED':
    case 'CANCELED':
      return 'cancelled';
    case 'TERMINATED':
      return 'terminated';
    case 'TIMED_OUT':
      return 'timed_out';
    default:
      return undefined;
  }
}

/** The state to show: the server's once the run is closed, else the workflow's own (paused, rolling back…). */
export function reconcileState(workflowState: RunState | undefined, serverStatus: string): RunState {
  return stateFromServer(serverStatus) ?? workflowState ?? 'running';
}
