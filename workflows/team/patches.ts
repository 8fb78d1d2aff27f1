/**
 * The `patched()` ids of the team workflows. Each guards a change that recorded histories must replay
 * without (ARCHITECTURE.md lists them and why).
 */

/** Teams started before agent capabilities existed take requests without proof when replayed. */
export const CAPABILITY_PATCH = 'agent-capabilities';
/**
 * Patch id: the team keeps a ledger charged from its agents' meters, and its limits bind every agent
 * (issue #9). Teams recorded before it read no meters.
 */
export const TEAM_BUDGET_PATCH = 'team-budgets';
/**
 * Patch id: a failed agent's workflow fails (its result rides in the failure's details), and a team
 * whose agents all failed (or one failed under `onAgentFailure: stop`) fails (issue #13). Before it,
 * both completed with the failure inside their result.
 */
export const HONEST_OUTCOMES_PATCH = 'team-honest-outcomes';
/**
 * Patch id: the team continues as new before its history grows large; its agents are started with
 * parent close policy ABANDON (they outlive the execution that started them) and report their end by
 * signal `agentEnded` (issue #13). Before it, a team never continued and its agents reported nothing.
 */
export const LONG_TEAMS_PATCH = 'team-continue-as-new';
/**
 * Patch id: a teammate request resent with a proof its sender used a few requests ago (the server
 * redelivers an update completed in the same task as a continue-as-new to the next execution; temporalio/temporal#6375)
 * is answered as the original request, not refused as a spoof attempt. Before it, only the last proof
 * used counted as a resend, and such an answer said `duplicate`.
 */
export const PROOF_REPLAYS_PATCH = 'team-proof-replays';
/**
 * Patch id: a team starts draining for continue-as-new at 1,000 events or 500 KB instead of 2,000 or
 * 1 MB: requests that land during the drain grew one execution past 2 MB (src/shared/team-carry).
 */
export const EARLY_CONTINUE_PATCH = 'team-early-continue';
/**
 * Patch id: requests accepted while a team drains for continue-as-new are queued and started by the next
 * execution, whose carry holds them (src/shared/team-carry `queued`); their update answers at once with
 * state `starting`. Before it, the drain started them too, so an unbroken flood of requests kept a team
 * from ever continuing and grew one execution past 2 MB.
 */
export const DRAIN_QUEUE_PATCH = 'team-drain-queue';
/**
 * Patch id: a new team claims a host (`claimHost`, ./host) before it starts its agents, and sends every
 * step that touches the workspace (its agents' directory operations and turns) to the host's queues.
 * Teams recorded before it use the shared queues (and local activities for the agents' directories).
 */
export const TEAM_HOST_PATCH = 'team-host-queue';
/**
 * Patch id: a team with a host checkpoints its workspace (a snapshot pushed to the checkpoint store) before
 * its first agent starts and after each agent's round and end; when its host is gone past the move time,
 * it moves (`adoptWorkspace` restores the last checkpoint on a live host) and its agents retry there what
 * the lost host never ran (./host). Teams recorded before it keep no checkpoints and fail with their host.
 */
export const TEAM_HOST_MOVE_PATCH = 'team-host-move';
/**
 * Patch id: signal `agentEnded` is believed only when the server says the agent's workflow has closed
 * (activity `agentWorkflowClosed`), and only for agents an earlier execution started: those this one
 * started tell their end by their child result. Before it, any `agentEnded` naming an agent ended it, so
 * an agent could end a running teammate in the team's books (its later spend never charged). Since it,
 * too, `agentProgress` sets no state and no session (our agents send neither; a forged `completed`
 * ended a teammate the same way).
 */
export const VERIFIED_ENDS_PATCH = 'team-verified-ends';
/**
 * Patch id: a team agent takes a `deliverMessage` into its inbox only once its team says it sent it
 * (local activity `messageVouched`, which queries the team's digests of the messages it delivered). Before
 * it, any `deliverMessage` went in, so an agent could signal a teammate directly a message "from" anyone,
 * past the team's proof check and hierarchy policy.
 */
export const VOUCHED_MESSAGES_PATCH = 'team-vouched-messages';
