/**
 * Every signal, query and update, defined once and imported by both the workflows and the clients.
 * Their names are public API (`temporal workflow signal --name rollback`): never rename them.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { AuditEntry, AuditHeadStatus } from './audit';
import { BudgetScopeSchema, type BudgetReport, type BudgetScope, type Ledger } from './budget';
import type { AgentStep, Checkpoint, PhaseResult, RunState, RunStatus } from './run';
import type { TeamState } from './team';
import type { BudgetLimit } from './spec';

/** `CP0` is the workspace as it was before phase 1 (runs started with the baseline patch take it). */
export const CheckpointIdSchema = z
  .string()
  .regex(/^CP(0|[1-9][0-9]*)$/, 'must be a checkpoint id like CP2 (CP0: the workspace before phase 1)');

export const RollbackRequestSchema = z.object({
  checkpoint: CheckpointIdSchema,
  reason: z.string().max(2000).optional(),
});
export type RollbackRequest = z.infer<typeof RollbackRequestSchema>;

export interface RollbackResult {
  checkpoint: string;
  /** The phase the run continues with. */
  resumesAt?: string;
}

/** Roll the run back to a checkpoint (fire-and-forget; an invalid request is recorded in the audit). */
export const rollbackSignal = defineSignal<[RollbackRequest]>('rollback');
/** Roll back and learn the outcome; the validator rejects an unknown checkpoint before it is recorded. */
export const rollbackUpdate = defineUpdate<RollbackResult, [RollbackRequest]>('rollbackToCheckpoint');

export const statusQuery = defineQuery<RunStatus>('status');
export const checkpointsQuery = defineQuery<Checkpoint[]>('checkpoints');
export const phaseResultsQuery = defineQuery<PhaseResult[]>('phaseResults');

/** Status of one agent workflow. */
export interface AgentWorkflowStatus {
  agentId: string;
  role: string;
  step: AgentStep;
  turns: number;
  lastTool?: string;
  costUsd: number;
  sessionId?: string;
  /** The agent's current attempt (1-based; its own failures count, crashes of workers do not). */
  attempt?: number;
}
export const agentStatusQuery = defineQuery<AgentWorkflowStatus>('status');

// ---------------------------------------------------------------------------------------------------------
// Budgets, governance and the audit trail

/**
 * The agent ids of a phase as the project workflow names its agents (and charges and limits them): the
 * agent's `id`, else its role for the first agent and `<role>-<n>` after. Budget scopes name agents by
 * these ids.
 */
export function phaseAgentIds(phase: { agents: ReadonlyArray<{ id?: string; role: string }> }): string[] {
  return phase.agents.map(agentIdAt);
}

/** The id of the agent at `index` of its phase (see {@link phaseAgentIds}). */
export function agentIdAt(agent: { id?: string; role: string }, index: number): string {
  return agent.id ?? (index === 0 ? agent.role : `${agent.role}-${index + 1}`);
}

const ActorSchema = z.string().min(1).max(200);

/** Update `raiseBudget`: sets the USD and/or token limit at a scope (units left out keep their value). */
export const BudgetRaiseRequestSchema = z
  .object({
    scope: BudgetScopeSchema,
    usd: z.number().nonnegative('must be a number ≥ 0').optional(),
    tokens: z.number().int('must be a whole number').nonnegative('must be ≥ 0').optional(),
    /** Who asked (goes into the audit trail), e.g. `user:alice`. */
    actor: ActorSchema.optional(),
  })
  .refine((r) => r.usd !== undefined || r.tokens !== undefined, {
    message: 'give usd or tokens (or both)',
    path: ['usd'],
  });
export type BudgetRaiseRequest = z.infer<typeof BudgetRaiseRequestSchema>;

export interface BudgetRaiseResult {
  scope: BudgetScope;
  /** The limit now in force at the scope. */
  limit: BudgetLimit;
  /** True when the run was paused by a budget when the update arrived (it re-checks its budgets now). */
  wasPaused: boolean;
}

/** Raise (or set) a budget limit; the validator rejects a malformed request or an unknown phase/agent. */
export const raiseBudgetUpdate = defineUpdate<BudgetRaiseResult, [BudgetRaiseRequest]>('raiseBudget');

/** Update `approve`: continues a run paused by a `pause_for_approval` gate as if the gate had passed. */
export const ApproveRequestSchema = z.object({
  note: z.string().trim().min(1, 'must not be empty').max(4000),
  approver: ActorSchema.optional(),
});
export type ApproveRequest = z.infer<typeof ApproveRequestSchema>;

export interface ApproveResult {
  phase: string;
  /** The failed gates the approval overrides. */
  gates: string[];
}

export const approveUpdate = defineUpdate<ApproveResult, [ApproveRequest]>('approve');

/** Which entries query `audit` returns: those after `afterSeq`, at most `limit` (and at most ~512 KB). */
export interface AuditPageRequest {
  afterSeq?: number;
  limit?: number;
}

/** A page of the entries a workflow holds in memory. */
export interface AuditPage {
  entries: AuditEntry[];
  /** Entries the run has recorded in all. */
  count: number;
  /** Set when more entries follow: ask again with this as `afterSeq`. */
  nextAfterSeq?: number;
}

/**
 * The entries a workflow holds (the last 200 and every one not yet written to `outputs/<run>/audit.jsonl`,
 * which has them all), oldest first, a page at a time: pass `{ afterSeq }` to read on.
 */
export const auditQuery = defineQuery<AuditEntry[], [AuditPageRequest?]>('audit');
/** Count and hash of the trail's last entry, and of the last one written to audit.jsonl. */
export const auditHeadQuery = defineQuery<AuditHeadStatus>('auditHead');

/** What `orchestrator budget status|report` shows, for project and team runs alike. */
export interface BudgetStatus {
  runId: string;
  /**
   * `team` for a team run, whose ledger's phases are its roles (src/shared/team-budget); absent for a
   * project run.
   */
  kind?: 'team';
  state: RunState | TeamState;
  pausedReason?: string;
  onExceeded: 'pause' | 'fail';
  report: BudgetReport;
  ledger: Ledger;
}

export const budgetQuery = defineQuery<BudgetStatus>('budget');

const ExactLimitSchema = z
  .object({
    microUsd: z.number().int().nonnegative().optional(),
    tokens: z.number().int().nonnegative().optional(),
  })
  .strict();
/**
 * Limits in exact units (micro-dollars, tokens) per level, as the metering gateway admits requests. A
 * `budgetLimits` signal must carry exactly this: anyone who can signal may send anything, and a malformed
 * limit must neither throw in the handler (a stalled agent) nor lift a limit.
 */
export const MeterLimitsMessageSchema = z
  .object({
    run: ExactLimitSchema.optional(),
    phase: ExactLimitSchema.optional(),
    agent: ExactLimitSchema.optional(),
  })
  // Strict: our senders send exactly these keys (limitsFor); a payload with others is not from them.
  .strict();
export type MeterLimitsMessage = z.infer<typeof MeterLimitsMessageSchema>;

/**
 * Signal `agentBudgetPaused`, agent → its run: a budget refused the agent's next model request. The agent
 * waits, its session and conversation intact, until the run sends {@link agentBudgetLimitsSignal}.
 */
export const AgentBudgetPausedSchema = z.object({
  workflowId: z.string().min(1).max(1000),
  phase: z.string().max(1000),
  agent: z.string().max(1000),
  /** The limit that refused, in words. */
  reason: z.string().max(2000),
  level: z.enum(['run', 'phase', 'agent']),
  unit: z.enum(['usd', 'tokens']),
});
export type AgentBudgetPaused = z.infer<typeof AgentBudgetPausedSchema>;
export const agentBudgetPausedSignal = defineSignal<[AgentBudgetPaused]>('agentBudgetPaused');

/**
 * Signal `budgetLimits`, run → agent: the limits now in force (after `raiseBudget`); a paused agent resumes
 * and runs its turn again. The payload is not what the gateway admits under: anything that reaches the
 * server can send this signal, so a model turn asks its run for its limits ({@link meterLimitsQuery})
 * when it opens its meter. A forged signal can at most wake a paused agent, whose turn is refused again.
 */
export const agentBudgetLimitsSignal = defineSignal<[MeterLimitsMessage]>('budgetLimits');

/** Which meter's limits {@link meterLimitsQuery} asks for: the phase (a team agent's role) and the agent. */
export const MeterLimitsRequestSchema = z
  .object({ phase: z.string().max(1000), agent: z.string().max(1000) })
  .strict();
export type MeterLimitsRequest = z.infer<typeof MeterLimitsRequestSchema>;

/**
 * Query `meterLimits` (project and team runs): the limits the run's ledger holds now for one agent's meter
 * (`limitsFor`). The metering gateway admits a turn's requests under these, never under limits an agent
 * workflow was signalled, so a budget is lifted only by `raiseBudget`, which the audit trail records.
 */
export const meterLimitsQuery = defineQuery<MeterLimitsMessage, [MeterLimitsRequest]>('meterLimits');
