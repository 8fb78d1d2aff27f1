/**
 * The activity proxies of `teamWorkflow` and `teamAgentWorkflow`, with their timeouts and retry
 * policies. Retries by cause (src/shared/failures): infrastructure failures retry without limit, the
 * rest fail at once. Named `proxies` because the lint rule reads any `activities` path as the Node side.
 */
import { ActivityCancellationType, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { agentTurnHeartbeatTimeout, retryPolicy, SHORT_ACTIVITY_TIMEOUT } from '../../src/shared/failures';
import type { TeamAgentSettings } from '../../src/shared/team';
import { agentTurnQueue, type TurnHost } from '../agent-queue';
import { hostPlacement } from '../host-placement';

/** The team issues each agent its capability before the agent's process can exist. */
export const identity = proxyActivities<Pick<Activities, 'issueCapability'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});

/** What a metered agent was served, read by the team to charge its ledger. */
export const meters = proxyActivities<Pick<Activities, 'readMeter'>>({
  startToCloseTimeout: '1 minute',
  retry: retryPolicy(),
});

/** An agent's directory: short file operations on the worker that runs the agent's workflow task. */
export const localFiles = proxyLocalActivities<
  Pick<Activities, 'prepareTeamAgent' | 'readTeamTasks' | 'markTeamTasks'>
>({
  startToCloseTimeout: '30 seconds',
  retry: retryPolicy(),
});

/** Whether an agent's workflow has closed (the check behind a believed `agentEnded`). */
export const ends = proxyActivities<Pick<Activities, 'agentWorkflowClosed'>>({
  // Beyond the check's own wait (./ends END_CLOSE_WAIT_MS); it heartbeats as it waits.
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: retryPolicy(),
});

/** Whether the team sent a message an agent was handed (the check before it enters the inbox). */
export const vouching = proxyLocalActivities<Pick<Activities, 'messageVouched'>>({
  startToCloseTimeout: '30 seconds',
  retry: retryPolicy(),
});

export const files = proxyActivities<Pick<Activities, 'archiveTeamAgent'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});

/** What an agent does to its directory in the workspace. */
export type AgentFiles = Pick<
  Activities,
  'prepareTeamAgent' | 'readTeamTasks' | 'markTeamTasks' | 'archiveTeamAgent'
>;

/**
 * An agent's directory operations. For an agent of a team with a host (./host), activities on the host's
 * queue: the directory is in the workspace, which only the host has. Otherwise, as before the host, local
 * activities (and the archive on the shared queue).
 */
export function agentFiles(host: TurnHost | undefined): AgentFiles {
  if (!host) return { ...localFilesOf(), archiveTeamAgent: (a) => files.archiveTeamAgent(a) };
  return proxyActivities<AgentFiles>({
    ...hostPlacement(host),
    startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
    retry: retryPolicy(),
  });
}

function localFilesOf(): Pick<AgentFiles, 'prepareTeamAgent' | 'readTeamTasks' | 'markTeamTasks'> {
  return {
    prepareTeamAgent: (a) => localFiles.prepareTeamAgent(a),
    readTeamTasks: (a) => localFiles.readTeamTasks(a),
    markTeamTasks: (a) => localFiles.markTeamTasks(a),
  };
}

/**
 * An agent's `claude` turn, on `<queue>-agents` (../agent-queue): room of its own, so a team of long
 * turns never holds up anyone's short steps; for a team with a host, the host's agent queue. Made per turn
 * because the queue depends on a patch.
 */
export function model(settings: TeamAgentSettings, host?: TurnHost) {
  return proxyActivities<Pick<Activities, 'claudeTurn'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '1 hour',
    // A cancellation (stop, completion) reaches the process at once through its nudge, or at its next
    // beat (a third of this: activities/turn-heartbeat). The team's own when its policy sets one.
    heartbeatTimeout: agentTurnHeartbeatTimeout(settings.turnHeartbeatTimeoutS),
    // An unset cancellationType encodes as TRY_CANCEL: the workflow would move on while the process runs.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // By cause (src/shared/failures): crashes and API outages retry without limit, the agent's own
    // failures end the turn.
    retry: retryPolicy({ maximumInterval: '1 minute' }),
  });
}

/** A script agent's turn, bounded by the team's script timeout, on `<queue>-agents` (../agent-queue). */
export function scriptActivities(settings: TeamAgentSettings, host?: TurnHost) {
  return proxyActivities<Pick<Activities, 'scriptTurn'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: `${settings.scriptTimeoutS + 60} seconds`,
    // Every agent turn's: at 5 s a loaded worker's late heartbeats restarted live scripts again and again
    // (attempt 7 in a 300-spawn team). Not part of replay (only activity id and type are).
    heartbeatTimeout: agentTurnHeartbeatTimeout(settings.turnHeartbeatTimeoutS),
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // A script's side effects may not be repeatable: only a crash (heartbeat timeout) retries it, and
    // then without limit (src/shared/failures); its own failures are not retried.
    retry: retryPolicy(),
  });
}
