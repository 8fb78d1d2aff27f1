/**
 * The one registry of failure types (ApplicationFailure `type`s) that activities and workflows raise, and
 * the retry rule built from it. Deterministic code: workflows import it to build their proxies' retry
 * policies and to recognise failures by type, never by message text.
 *
 * The retry rule, by cause:
 * - `infrastructure` (worker lost, heartbeat timeout, server or API unavailable, a git lock): Temporal
 *   retries without limit, with backoff. A crashed worker never uses up an agent's attempts.
 * - `agent` (non-zero exit, a hang, a model error the agent cannot retry away, a failed gate): Temporal
 *   does not retry them; `agentWorkflow` counts them against the agent's own `max_attempts` and starts
 *   the next attempt itself. Counting there, not with Temporal's `maximumAttempts`, is the point:
 *   Temporal's count also includes heartbeat timeouts, i.e. crashes of our own workers.
 * - `input`, `config`, `budget`, `policy`: retrying cannot help; never retried, the run says why.
 */
import type { RetryPolicy } from '@temporalio/workflow';

export type FailureCause = 'infrastructure' | 'agent' | 'input' | 'config' | 'budget' | 'policy';

export interface FailureInfo {
  cause: FailureCause;
  /** What the failure means, for people reading a failed run. */
  meaning: string;
}

/** Every failure type, with its cause and meaning. Add a type here before raising it anywhere. */
export const FAILURES = {
  // ---- infrastructure: retried by Temporal without limit ----
  RateLimited: {
    cause: 'infrastructure',
    meaning: 'the model API answered 429; retried after its retry-after',
  },
  ApiUnavailable: {
    cause: 'infrastructure',
    meaning: 'the model API was unavailable (5xx, 529, connection)',
  },
  ProcessKilled: {
    cause: 'infrastructure',
    meaning: 'the agent process was killed by a signal from outside',
  },
  LeaseLost: {
    cause: 'infrastructure',
    meaning:
      "the worker stalled past the lease, so the agent's watchdog ended it (the worker's failure, not the agent's)",
  },
  GitLocked: {
    cause: 'infrastructure',
    meaning: 'another live git process holds the shadow repository lock',
  },
  GitFailed: { cause: 'infrastructure', meaning: 'a git command failed in a way a retry may fix (I/O)' },
  LimitsUnavailable: {
    cause: 'infrastructure',
    meaning: "a model turn's run did not answer which budget limits bind it (query meterLimits)",
  },
  // ---- agent: counted against the agent's own max_attempts by agentWorkflow ----
  AgentExited: { cause: 'agent', meaning: 'a script agent exited with a non-zero code' },
  AgentHung: {
    cause: 'agent',
    meaning: 'the agent made no progress for its hang limit, or outlived its timeout_s; it was ended',
  },
  ScriptKilled: { cause: 'agent', meaning: 'a script agent was ended by a signal (not by us)' },
  MaxTurnsExceeded: { cause: 'agent', meaning: 'the agent used its max_turns without finishing' },
  StructuredOutputFailed: {
    cause: 'agent',
    meaning: 'the agent did not produce the structured output asked for',
  },
  CliError: { cause: 'agent', meaning: 'the claude CLI failed during execution (error_during_execution)' },
  InvalidRequest: { cause: 'agent', meaning: 'the model API rejected the request the agent built (4xx)' },
  SessionInUse: { cause: 'agent', meaning: 'the claude session id is in use (repaired in-process once)' },
  SessionNotFound: {
    cause: 'agent',
    meaning: 'the claude session has no transcript (repaired in-process once)',
  },
  // ---- config: the installation is wrong ----
  ClaudeNotFound: { cause: 'config', meaning: 'the claude CLI is not installed or not executable' },
  InvalidInvocation: { cause: 'config', meaning: 'the claude CLI refused its arguments (version mismatch?)' },
  AuthenticationFailed: { cause: 'config', meaning: 'the model API refused the credentials (401/403)' },
  UnknownModel: { cause: 'config', meaning: 'the model does not exist or has no known price' },
  GitMissing: { cause: 'config', meaning: 'git is not installed' },
  ScriptNotFound: { cause: 'config', meaning: "a script agent's program does not exist" },
  NoCheckpointStore: {
    cause: 'config',
    meaning:
      'a run lost its host and the worker taking it over has no checkpoint store (ORCHESTRATOR_CHECKPOINT_STORE) to restore from',
  },
  CheckpointNotInStore: {
    cause: 'config',
    meaning:
      "a fork's parent lost its host and the checkpoint store has no copy of the forked checkpoint (the parent ran without ORCHESTRATOR_CHECKPOINT_STORE)",
  },
  // ---- input: a request that can never succeed ----
  InvalidInput: { cause: 'input', meaning: 'an activity input failed validation' },
  InvalidActivityInput: { cause: 'input', meaning: 'a workspace activity input failed validation' },
  InvalidToolInput: { cause: 'input', meaning: 'a tool call input failed validation' },
  InvalidAuditInput: { cause: 'input', meaning: 'an audit entry failed validation' },
  InvalidTeamInput: { cause: 'input', meaning: 'a team input or role is invalid' },
  InvalidRunInput: { cause: 'input', meaning: 'the projectWorkflow input failed validation' },
  InvalidAgent: { cause: 'input', meaning: 'an agent spec cannot run (no command, wrong routing)' },
  InvalidFork: { cause: 'input', meaning: 'a fork names a checkpoint or phase that does not fit' },
  InvalidGate: { cause: 'input', meaning: 'a gate definition is invalid' },
  InvalidGateInput: { cause: 'input', meaning: 'the evaluateGates input failed validation' },
  InvalidPath: { cause: 'input', meaning: 'a path leaves the workspace or is not usable' },
  WorkspaceNotFound: { cause: 'input', meaning: 'the workspace does not exist' },
  WorkspaceNotInitialized: { cause: 'input', meaning: 'the workspace has no shadow repository' },
  UnknownCommit: { cause: 'input', meaning: 'a commit is not a snapshot of this workspace' },
  TargetNotEmpty: { cause: 'input', meaning: 'a fork target workspace is not empty' },
  AgentDirMissing: { cause: 'input', meaning: "a team agent's directory is missing" },
  // ---- budget and policy ----
  BudgetExhausted: { cause: 'budget', meaning: 'the agent stopped at its budget (the CLI max_budget_usd)' },
  BudgetExceeded: { cause: 'budget', meaning: 'the run failed because a budget was exceeded (policy fail)' },
  SpawnRefused: { cause: 'policy', meaning: 'the hierarchy policy refused a spawn request' },
  MessageRefused: { cause: 'policy', meaning: 'a message names no running agent of the team' },
  TeamBusy: {
    cause: 'policy',
    meaning: 'a draining team holds as many queued requests as its carry allows; send the request again',
  },
  SpoofAttempt: { cause: 'policy', meaning: 'a request did not prove the agent identity it claims' },
  PhaseFailed: { cause: 'agent', meaning: 'a phase failed for good (its agents, artifacts or gates)' },
  AgentFailed: { cause: 'agent', meaning: 'an agent failed for a reason no finer type names' },
  TasksNotCompleted: {
    cause: 'agent',
    meaning: 'a team agent used its rounds without completing every task in its tasks.md',
  },
  TeamFailed: {
    cause: 'agent',
    meaning: "every agent of a team failed, or an agent failed under the policy's on_agent_failure: stop",
  },
} as const satisfies Record<string, FailureInfo>;

export type FailureType = keyof typeof FAILURES;

/** Whether `type` is a registered failure type. */
export function isFailureType(type: unknown): type is FailureType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(FAILURES, type);
}

/** The cause of a failure type; unknown types (plain errors, timeouts) count as infrastructure. */
export function failureCause(type: string | undefined): FailureCause {
  return isFailureType(type) ? FAILURES[type].cause : 'infrastructure';
}

/** Whether Temporal may retry a failure of this type: only infrastructure failures. */
export function isRetryable(type: string | undefined): boolean {
  return failureCause(type) === 'infrastructure';
}

/** Whether a failure of this type is the agent's own, to be counted against its `max_attempts`. */
export function countsAgainstAgent(type: string | undefined): boolean {
  return failureCause(type) === 'agent';
}

/** Whether a failure type means a budget stopped the work. */
export function isBudgetFailure(type: string | undefined): boolean {
  return failureCause(type) === 'budget';
}

/** Every registered type Temporal must not retry: what every proxy's `nonRetryableErrorTypes` lists. */
export const NON_RETRYABLE_ERROR_TYPES: readonly FailureType[] = (
  Object.keys(FAILURES) as FailureType[]
).filter((t) => !isRetryable(t));

/**
 * The one retry policy of every activity: infrastructure failures retry without limit, with backoff
 * capped at `maximumInterval`; every other registered type fails at once (and an agent's own failure is
 * then counted by agentWorkflow). No `maximumAttempts` on purpose: it would count crashes of our workers.
 */
export function retryPolicy(
  overrides: Pick<RetryPolicy, 'maximumInterval' | 'initialInterval'> = {},
): RetryPolicy {
  return {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    ...overrides,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  };
}

/**
 * Heartbeat timeout of every long activity: a dead worker is noticed this long after its last
 * heartbeat. Activities heartbeat every second; the worker throttles to at most every 2 s.
 */
export const HEARTBEAT_TIMEOUT = '10 seconds';

/**
 * Heartbeat timeout of agent turns (script, `claude`, api and tool turns on `<queue>-agents`). Every
 * heartbeat is a write of the run's state on the server, so turns beat at a third of this
 * (activities/turn-heartbeat turnHeartbeatEvery): at 10 s they beat every 2 s, and the heartbeats of 100
 * held agents were 70 % of the dev server's requests; its SQLite fell behind, heartbeats went unrecorded,
 * and the timeouts that followed killed and restarted live agents, which loaded it further until nothing
 * moved (bench:fleet at N = 100, issue #16). At 30 s a turn beats every 10 s (5× fewer writes) and a slow
 * server has 20 s before it gives up on a live turn. A dead worker's turn is retried 30 s after its last
 * beat; a cancellation reaches a turn of this process at once (its nudge), one of another process within a
 * beat. Not part of replay (only activity id and type are).
 */
export const AGENT_TURN_HEARTBEAT_TIMEOUT = '30 seconds';

/**
 * Bounds of a run's or team's own agent-turn heartbeat timeout (`constraints.agent_heartbeat_timeout_s`,
 * the team policy's `agent.heartbeat_timeout_s`): at least 6 s, so a turn beating at a third of it (never
 * more often than every 2 s) still has two beats of slack; at most an hour.
 */
export const MIN_AGENT_HEARTBEAT_TIMEOUT_S = 6;
export const MAX_AGENT_HEARTBEAT_TIMEOUT_S = 3600;

/**
 * The heartbeat timeout an agent turn is scheduled with: the run's or team's own, in seconds, when it set
 * one, else {@link AGENT_TURN_HEARTBEAT_TIMEOUT}. A shorter one notices a dead worker sooner (its turn is
 * retried that long after its last beat) for more heartbeat writes on the server (a beat every third of
 * it). Activity options are not part of replay, so a run may change it with no patch.
 */
export function agentTurnHeartbeatTimeout(seconds: number | undefined): string {
  return seconds === undefined ? AGENT_TURN_HEARTBEAT_TIMEOUT : `${seconds} seconds`;
}

/**
 * Start-to-close timeout of every short activity that does not heartbeat (an audit append, a meter read,
 * a capability file): a worker lost during one is noticed only by this timeout, so it is short (a
 * crash loop once found a run waiting a whole minute for a meter read its dead worker had taken).
 * Retries are unlimited, so a slow attempt on a loaded machine costs a retry, never the run.
 */
export const SHORT_ACTIVITY_TIMEOUT = '15 seconds';

/**
 * Workflow task timeout of a run (continue-as-new keeps it). Temporal's default, 10 s, is too short for
 * a worker that has just restarted after a crash and replays every run at once on a busy host: a crash
 * loop saw such replays take 10–11 s, time out, and then wait 20 s of the server's retry backoff. A
 * worker killed during a task is noticed this much later, but its restart takes longer than that.
 */
export const RUN_WORKFLOW_TASK_TIMEOUT = '20 seconds';

/** How many times an agent's own failure is tried when its spec does not say (`max_attempts`). */
export const DEFAULT_AGENT_ATTEMPTS = 3;
