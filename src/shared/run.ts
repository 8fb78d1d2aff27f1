/**
 * Run state types shared by workflows (which produce them) and clients (which query them). Deterministic.
 */
import { z } from 'zod';

export const UsageSchema = z.object({
  input_tokens: z.number().int().nonnegative().default(0),
  output_tokens: z.number().int().nonnegative().default(0),
  cache_creation_input_tokens: z.number().int().nonnegative().default(0),
  cache_read_input_tokens: z.number().int().nonnegative().default(0),
});
export type Usage = z.infer<typeof UsageSchema>;

export const ZERO_USAGE: Usage = {
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

export function addUsage(a: Usage, b: Usage): Usage {
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
    cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
  };
}

export function totalTokens(u: Usage): number {
  return u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
}

/** Lifecycle of one agent: INITIALIZE → PLAN → ACT → SUMMARIZE → COMPLETE (or FAILED / CANCELLED). */
export type AgentStep = 'INITIALIZE' | 'PLAN' | 'ACT' | 'SUMMARIZE' | 'COMPLETE' | 'FAILED' | 'CANCELLED';

export type AgentState = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled' | 'skipped';

/** What an agent returns to its phase: summaries and references, never transcripts. */
export interface AgentResult {
  agentId: string;
  role: string;
  backend: string;
  status: 'completed' | 'failed' | 'cancelled' | 'skipped';
  /** A short summary (capped) of what the agent produced. */
  summary: string;
  /** Path of the full output or transcript under outputs/<run>/agents/. */
  outputRef?: string;
  usage: Usage;
  costUsd: number;
  /** Per-model usage and cost, for reports. */
  models?: Record<string, { usage: Usage; costUsd: number }>;
  sessionId?: string;
  error?: string;
  /** The failure type (src/shared/failures) of a failed agent: what callers match on, never `error`. */
  errorType?: string;
  /** Attempts the agent used (its own failures, counted against `max_attempts`). */
  attempts?: number;
  /** api tool calls refused because the agent's `allowed_tools` does not list them (first 20). */
  refusedTools?: { tool: string; turn: number }[];
  startedAt: string;
  completedAt: string;
}

export interface ArtifactFile {
  path: string;
  size: number;
  sha256: string;
}

/** `inherited`: a fork's phases up to the checkpoint it was forked from (done by the parent run). */
export type PhaseStatus =
  'pending' | 'running' | 'completed' | 'failed' | 'rolled_back' | 'skipped' | 'inherited';

export interface PhaseResult {
  phase: string;
  /** Position of the phase in the intake (0-based). */
  index: number;
  /** 1 for the first run of this phase, 2 after one rollback or retry, … */
  attempt: number;
  status: PhaseStatus;
  startedAt: string;
  completedAt?: string;
  duration_ms?: number;
  /** The phase's manifest (artifacts with sizes and hashes) under outputs/<run>/<phase>/. */
  outputRef?: string;
  usage: Usage;
  costUsd: number;
  /** Artifacts of the checkpoint (count, bytes); the list with hashes is in the manifest (`outputRef`). */
  artifactTotals?: { files: number; bytes: number };
  /** @deprecated Only in results recorded before artifact lists left history; see `artifactTotals`. */
  artifacts?: ArtifactFile[];
  errors: string[];
  agents: AgentResult[];
  checkpoint?: string;
  rolledBackBy?: string;
}

export interface Checkpoint {
  /** CP1, CP2, … in the order taken; never reused within a run, even after a rollback. */
  id: string;
  /** `post-<phase>`. */
  label: string;
  phase: string;
  phaseIndex: number;
  /** Commit of the workspace snapshot in the shadow repository. */
  commit: string;
  manifestPath: string;
  /** sha256 of the manifest file. */
  manifestSha256?: string;
  createdAt: string;
  /** The run that took it (a fork inherits its parent's checkpoints). */
  runId: string;
  /** Set when a rollback to an earlier checkpoint discarded this one. */
  rolledBack?: boolean;
}

/** `terminated` and `timed_out` come from the server only: the workflow cannot observe them. */
export type RunState =
  | 'starting'
  | 'running'
  | 'rolling_back'
  | 'paused'
  | 'completed'
  | 'failed'
  | 'cancelled'
  | 'terminated'
  | 'timed_out';

export interface AgentStatusRow {
  id: string;
  role: string;
  phase: string;
  workflowId: string;
  state: AgentState;
  costUsd?: number;
  error?: string;
  /** The failure type (src/shared/failures) of a failed agent, e.g. `RateLimited`. */
  errorType?: string;
  /** Skills applied to the agent (`id@version`): their methodology is in its prompt. */
  skills?: string[];
  /** The agent's attempt running (or last run), from its second attempt on; a script agent's only. */
  attempt?: number;
}

/** How many of a failed phase's reasons its status row keeps (the phase results have all of them). */
export const PHASE_ERRORS_SHOWN = 10;

export interface RunStatus {
  runId: string;
  project: string;
  state: RunState;
  currentPhase?: string;
  /** "step N/total" where N is the 1-based position of the current (or last) phase. */
  step: string;
  phases: {
    name: string;
    status: PhaseStatus;
    attempt: number;
    checkpoint?: string;
    /** Why a failed phase failed (artifacts, gates with their output, agents), first few. */
    errors?: string[];
  }[];
  agents: AgentStatusRow[];
  checkpoints: Checkpoint[];
  rollbacks: { to: string; reason?: string; at: string; fromPhase?: string }[];
  totals: { usage: Usage; costUsd: number; tokens: number };
  /** Why the run waits (budget, approval), when state is `paused`. */
  pausedReason?: string;
  workspace: string;
  outputsDir: string;
  forkedFrom?: { runId: string; checkpoint: string };
  /** How many times the run continued-as-new (history stays small). */
  continuedAsNew: number;
  /** Why a closed run did not complete, as the server reports it (set by clients, not the workflow). */
  error?: string;
  /**
   * CP0: the workspace as it was before phase 1, for rollback and fork (phase index -1). Kept apart from
   * `checkpoints`, which lists the phases' own; runs started before it existed have none.
   */
  baseline?: Checkpoint;
  /** When the run is due (ISO time), from the intake's `constraints.timeline`. */
  deadline?: string;
  /** Things the user should know that stop nothing, e.g. phases that ran past the deadline. */
  warnings?: string[];
  /** The host the run's workspace lives on (README "Many hosts"); runs started before hosts have none. */
  host?: string;
}
