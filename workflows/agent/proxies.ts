/**
 * The activities an agent's turns run, proxied per call: turns go to `<queue>-agents` or the run's host
 * queue (../agent-queue), with the run's heartbeat timeout.
 */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { agentTurnHeartbeatTimeout, retryPolicy } from '../../src/shared/failures';
import { agentTurnQueue, type TurnHost } from '../agent-queue';

/**
 * Set explicitly: left unset, the SDK sends proto default 0 (TRY_CANCEL) whatever its docs say, and a
 * cancelled agent would report "cancelled" while its process keeps running. Waiting means a rollback or
 * a run cancel returns only after the activity has ended its process group.
 */
const WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

// Turns run on `<queue>-agents` (./agent-queue), so the proxies are made per call.
// Retries by cause (src/shared/failures): infrastructure failures, including a lost worker noticed by the
// heartbeat timeout, retry without limit; the agent's own failures are counted below, per agent attempt.
// The heartbeat timeout is the run's own (`constraints.agent_heartbeat_timeout_s`) when it set one.
export const script = (host?: TurnHost, heartbeatS?: number) =>
  proxyActivities<Pick<Activities, 'scriptTurn'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: agentTurnHeartbeatTimeout(heartbeatS),
    cancellationType: WAIT,
    retry: retryPolicy(),
  });
export const model = (host?: TurnHost, heartbeatS?: number) =>
  proxyActivities<Pick<Activities, 'claudeTurn' | 'apiTurn'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: agentTurnHeartbeatTimeout(heartbeatS),
    cancellationType: WAIT,
    // The activities type their failures; a 429's retry-after becomes the failure's nextRetryDelay, which
    // overrides this backoff.
    retry: retryPolicy({ maximumInterval: '1 minute' }),
  });
export const tools = (host?: TurnHost, heartbeatS?: number) =>
  proxyActivities<Pick<Activities, 'runTool'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: agentTurnHeartbeatTimeout(heartbeatS),
    cancellationType: WAIT,
    retry: retryPolicy(),
  });
