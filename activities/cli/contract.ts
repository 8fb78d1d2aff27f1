/**
 * The `claudeTurn` activity's contract: its input (validated at the activity's edge), the summary it
 * returns (and that its failures carry in `details[0]`), and its heartbeat details.
 */
import { z } from 'zod';
import { CliSubagentSchema, type SessionMode } from '../../src/claude/args';
import type { ModelUsage, UsageTotals } from '../../src/claude/stream';
import { PermissionModeSchema } from '../../src/shared/spec';
import type { Refusal } from '../../src/meter/admission';
import { MeterInputSchema } from '../meter';
import { FileIdSchema, SafeNameSchema } from '../../src/shared/ids';

const UsageTotalsSchema = z.object({
  inputTokens: z.number().nonnegative(),
  outputTokens: z.number().nonnegative(),
  cacheRead: z.number().nonnegative(),
  cacheCreation: z.number().nonnegative(),
});

/** Input of {@link CliActivities.claudeTurn}. */
export const ClaudeTurnInputSchema = z.object({
  runId: SafeNameSchema,
  /** File-safe: it names the transcript file. */
  agentId: FileIdSchema,
  /** The run's outputs folder (recorded at run start); default the worker's ORCHESTRATOR_OUTPUTS_DIR. */
  outputsDir: z.string().startsWith('/', 'must be an absolute path').optional(),
  /** Chosen by the workflow, stable across turns of one agent. */
  sessionId: z.uuid('must be a UUID'),
  /** True for every turn after the first of the session. */
  resume: z.boolean().default(false),
  prompt: z.string().min(1, 'must not be empty'),
  /** The workspace, absolute. */
  cwd: z.string().startsWith('/', 'must be an absolute path'),
  model: z.string().min(1).optional(),
  maxTurns: z.number().int().positive().optional(),
  maxBudgetUsd: z.number().positive().optional(),
  appendSystemPrompt: z.string().optional(),
  allowedTools: z.array(z.string().min(1)).optional(),
  disallowedTools: z.array(z.string().min(1)).optional(),
  permissionMode: PermissionModeSchema.optional(),
  /** Subagents, passed as `--agents <json>`. */
  agents: z.record(z.string().min(1), CliSubagentSchema).optional(),
  extraEnv: z.record(z.string(), z.string()).optional(),
  /** The agent's own attempt (agentWorkflow counts them); above 1 the turn is a retry of a failed one. */
  agentAttempt: z.number().int().positive().default(1),
  /** Wall-clock limit of the turn (the agent's `timeout_s`): past it the run is ended as hung. */
  timeoutS: z.number().positive().optional(),
  /** Seconds without output from the CLI before the run counts as hung; default from the worker. */
  hangAfterS: z.number().positive().optional(),
  /** A team agent's capability file: its secret goes into this process's environment only. */
  capabilityFile: z.string().startsWith('/').optional(),
  /** The session's `total_cost_usd` after its previous turn (0 for a new session). */
  previousSessionCostUsd: z.number().nonnegative().default(0),
  /** The session's cumulative token usage after its previous turn (the summary's `sessionUsage`). */
  previousSessionUsage: UsageTotalsSchema.optional(),
  /** The meter this turn spends on, and its limits; default: a meter named after `agentId`. */
  meter: MeterInputSchema.optional(),
  /**
   * A team agent: the run gets the team MCP server (tools act as this agent) and live input, so messages
   * the agent receives while it runs reach the session as new user turns.
   */
  team: z
    .object({
      runId: z.string().min(1),
      agentId: z.string().min(1),
      /** Messages up to this inbox seq were already given to the session (e.g. in the prompt). */
      afterSeq: z.number().int().nonnegative().default(0),
      /** How often the agent's inbox is polled while its process runs. */
      pollMs: z.number().int().positive().default(250),
    })
    .optional(),
});
export type ClaudeTurnInput = z.input<typeof ClaudeTurnInputSchema>;

/** The input after validation (defaults applied). */
export type ParsedClaudeTurnInput = z.infer<typeof ClaudeTurnInputSchema>;

/** What a turn returns (and what failures carry in `details[0]`). The transcript holds everything else. */
export interface ClaudeTurnSummary {
  sessionId: string;
  ok: boolean;
  /** The final result's subtype, or `none` when the run printed no result. */
  subtype: string;
  /** The final result text (or errors), capped at {@link RESULT_TEXT_CAP} characters. */
  resultText: string;
  numTurns: number;
  durationMs: number;
  /** Cumulative session cost as the CLI reports it (carried over on resume). */
  totalCostUsd: number;
  /**
   * This turn's cost: what the metering gateway recorded for it (every response served, priced on the
   * served model), or without a gateway totalCostUsd − previousSessionCostUsd.
   */
  costUsd: number;
  /** The same in integer micro-dollars, when metered. */
  microUsd?: number;
  /** The CLI's own figure for this turn (a cross-check of the meter). */
  cliCostUsd?: number;
  /** Set when the turn was stopped because a budget refused its next model request. */
  budgetRefusal?: Refusal;
  /** False when the run printed no result (killed): its cost shows up in the next turn's delta. */
  costKnown: boolean;
  /** This turn's tokens: sessionUsage − previousSessionUsage, never negative. */
  usage: UsageTotals;
  /** Cumulative session tokens over all models (from the result's modelUsage). */
  sessionUsage: UsageTotals;
  /** Cumulative per-model usage as the CLI reports it. */
  modelUsage: Record<string, ModelUsage>;
  model?: string;
  transcriptPath: string;
  stderrPath: string;
  lastTool?: string;
  exitCode?: number;
  /** How the session was opened by the run that produced this summary. */
  sessionMode: SessionMode;
  /** Team agents: the highest inbox seq given to the live session. */
  deliveredSeq?: number;
}

/** Heartbeat details: progress, plus the process group so a later attempt can tell what ran before. */
export const ClaudeHeartbeatSchema = z.object({
  sessionId: z.string(),
  attempt: z.number(),
  pid: z.number().optional(),
  pgid: z.number().optional(),
  turns: z.number(),
  lastTool: z.string().optional(),
  costUsd: z.number(),
  /** Real progress: bytes and stream-json lines received from the CLI, and when the last arrived. */
  bytes: z.number().optional(),
  lines: z.number().optional(),
  lastProgressAt: z.number().optional(),
  /** The attempt's lease (../watchdog): where it runs and when it last renewed. */
  host: z.string().optional(),
  leaseAt: z.number().optional(),
});
export type ClaudeHeartbeat = z.infer<typeof ClaudeHeartbeatSchema>;
