/**
 * `projectWorkflow`: runs an intake's phases in order. Each phase starts its agents (child
 * `agentWorkflow`s) by its strategy, validates its artifacts and takes checkpoint CP<n> (a shadow-git
 * snapshot plus a manifest). A rollback, by signal or update, cancels in-flight agents, restores the
 * workspace exactly and continues after the checkpoint. History stays small: results carry references,
 * and the run continues-as-new every few phases.
 *
 * Budgets: a ledger (src/shared/budget) lives in the workflow state and in the continue-as-new carry, so a
 * crash or a rollback never loses or repeats a charge. Every agent child reserves before it starts (its
 * remaining USD becomes the CLI's `--max-budget-usd`) and is charged its real spend when it returns. An
 * exhausted budget pauses the run until update `raiseBudget` (or fails it, per
 * `constraints.on_budget_exceeded`). Governance: the phase's gates run after its agents and before its
 * checkpoint; a failing gate retries the phase, rolls back, waits for update `approve`, or fails the run.
 * Every decision goes into the audit trail (workflows/audit).
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  HEARTBEAT_TIMEOUT,
  isBudgetFailure,
  retryPolicy,
  SHORT_ACTIVITY_TIMEOUT,
} from '../src/shared/failures';
import {
  charge,
  createLedger,
  describeExceeded,
  getLimit,
  limitsFor,
  LedgerSchema,
  limitsFromSpec,
  release,
  remaining,
  report as ledgerReport,
  reserve,
  setLimit,
  totals as ledgerTotals,
  type BudgetExceeded,
  type BudgetScope,
  type Ledger,
} from '../src/shared/budget';
import { chargeFromMeter, type MeterCharged } from '../src/shared/meter-charge';
import {
  agentIdAt,
  approveUpdate,
  ApproveRequestSchema,
  auditHeadQuery,
  auditQuery,
  agentBudgetLimitsSignal,
  agentBudgetPausedSignal,
  budgetQuery,
  BudgetRaiseRequestSchema,
  checkpointsQuery,
  phaseAgentIds,
  phaseResultsQuery,
  raiseBudgetUpdate,
  RollbackRequestSchema,
  rollbackSignal,
  rollbackUpdate,
  statusQuery,
  type ApproveRequest,
  type BudgetRaiseRequest,
  type RollbackRequest,
  type RollbackResult,
} from '../src/shared/messages';
import {
  addUsage,
  type AgentResult,
  type AgentStatusRow,
  type Checkpoint,
  type PhaseResult,
  type RunState,
  type RunStatus,
  totalTokens,
  type Usage,
  ZERO_USAGE,
} from '../src/shared/run';
import {
  type AgentSpec,
  type PhaseSpec,
  compactSpec,
  type ProjectWorkflowInput,
  ProjectWorkflowInputSchema,
} from '../src/shared/spec';
import { agentFileId, agentWorkflow, agentWorkflowId, type AgentWorkflowInput } from './agent';
import { createAuditTrail } from './audit';
import { cutText } from '../src/shared/audit';
import { OPERATOR } from '../src/shared/identity';
import {
  type CarriedState,
  isCarriedRow,
  packCarry,
  type ProjectCarry,
  resultsFile,
  unpackCarry,
} from './carry';
import { runStrategy } from './strategies';

/** Guards the manifest written when a run is cancelled or fails through an error (histories before it
 * wrote none). */
const TRUTHFUL_END_PATCH = 'run-manifest-on-every-end';
/** Guards the bounded continue-as-new carry (and the results file written before it). */
const BOUNDED_CARRY_PATCH = 'bounded-carry';

/** Continue-as-new after this many phases in one run, or earlier when Temporal suggests it. */
export const PHASES_PER_RUN = 10;

export type { ProjectCarry } from './carry';

export interface ProjectSummary {
  runId: string;
  state: RunState;
  checkpoints: Checkpoint[];
  phases: { name: string; status: string; attempt: number; checkpoint?: string }[];
  rollbacks: RunStatus['rollbacks'];
  totals: RunStatus['totals'];
  /** The ledger's run-wide spend (every attempt, rolled back or not). */
  budget: ReturnType<typeof ledgerTotals>;
  manifestPath?: string;
}

// Retries by cause (src/shared/failures): infrastructure failures retry without limit, the rest fail at
// once. Every workspace activity heartbeats every second, so a worker that dies mid-checkpoint or
// mid-restore is noticed after HEARTBEAT_TIMEOUT, not after the start-to-close timeout.
const workspace = proxyActivities<
  Pick<
    Activities,
    | 'initWorkspace'
    | 'restoreWorkspace'
    | 'materializeCheckpoint'
    | 'updateRunManifest'
    | 'snapshotWorkspace'
    | 'writeOutput'
  >
>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: retryPolicy(),
});
const checkpointing = proxyActivities<Pick<Activities, 'checkpointPhase'>>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: retryPolicy(),
});

const governance = proxyActivities<Pick<Activities, 'evaluateGates'>>({
  // Tool gates run test suites (their own timeouts bound them); the activity heartbeats every few seconds.
  // Explicit: unset, the SDK sends TRY_CANCEL and a rollback would not wait for the gate's process to end.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  // A failing gate is not an activity failure: its verdict is counted by the gate's on_fail policy.
  retry: retryPolicy(),
});

const meter = proxyActivities<Pick<Activities, 'readMeter'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});

/** What an agent start was served, from its meter (see activities/meter). */
type MeterSummary = Awaited<ReturnType<Activities['readMeter']>>;

/** Patch id: agents spend through metered turns and are charged from their meters (issue #9). */
const METERED = 'metered-charge';

class RollbackRequested extends Error {}

/** How a phase attempt ended, as far as the main loop must act on it. */
type PhaseOutcome =
  | { kind: 'completed' }
  /** The phase failed for good; `result.errors` says why. */
  | { kind: 'failed' }
  /** A `retry_phase` gate failed: run the phase again on top of its own work. */
  | { kind: 'retry'; gates: string[] }
  /** A `rollback` gate failed: restore the previous checkpoint (or the phase start) and run it again. */
  | { kind: 'rollback'; gates: string[] };

/** What the workflow reads of a gate from the spec (gates are validated by config/ and the activity). */
interface GateView {
  id?: unknown;
  on_fail?: unknown;
}

/** The usage and cost an agent child reported, whichever way it ended. */
interface Spend {
  usage: Usage;
  costUsd: number;
  models?: AgentResult['models'];
}

export async function projectWorkflow(
  raw: ProjectWorkflowInput,
  carry?: ProjectCarry,
): Promise<ProjectSummary> {
  // Runs can be started by `temporal workflow start` or another service, not only by our CLI: a bad
  // input fails the run with the field named, instead of a workflow task that retries forever.
  const parsed = ProjectWorkflowInputSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid projectWorkflow input: ${issues}`, 'InvalidRunInput');
  }
  const input = parsed.data;
  const { runId, spec } = input;
  const phases = spec.phases;
  const onExceeded = spec.constraints.on_budget_exceeded;
  const st: CarriedState & { ledger: Ledger } = {
    ...unpackCarry(carry, { runId, outputsDir: input.outputsDir, phaseNames: phases.map((p) => p.name) }),
    // The carried ledger crossed a boundary (workflow input): validate it rather than trust it.
    ledger: carry?.ledger ? LedgerSchema.parse(carry.ledger) : createLedger(limitsFromSpec(spec, agentIdAt)),
  };
  const audit = createAuditTrail({ runId, outputsDir: input.outputsDir, carry: carry?.audit });
  let state: RunState = carry ? 'running' : 'starting';
  let currentPhase: string | undefined;
  const agentRows = new Map<string, AgentStatusRow>();
  let pendingRollback: (RollbackRequest & { source: string }) | undefined;
  let rollbackRequestsServed = 0;
  let phaseScope: CancellationScope | undefined;
  const rejected: { at: string; reason: string }[] = [];
  let refusedSignals = 0;
  /** Why the run waits, by waiter (a budget per agent, an approval): non-empty means `paused`. */
  const pauses = new Map<string, string>();
  /** Bumped by every `raiseBudget`: budget waiters re-check when it moves. */
  let budgetVersion = 0;
  /** Metered agent starts in flight, by child workflow id: where their spend is recorded. */
  const runningMeters = new Map<string, { key: string; meterId: string; phase: string; agent: string }>();
  /** Metered agents waiting in place (same session) for a raise, by child workflow id. */
  const budgetPausedAgents = new Set<string>();
  /** Per reservation key: what has been charged from its meter so far, per served model. */
  const meteredCharged = new Map<string, MeterCharged>();
  let awaitingApproval:
    { phase: string; gates: string[]; decision?: { note: string; approver?: string } } | undefined;

  const isOver = () => state === 'completed' || state === 'failed' || state === 'cancelled';
  const liveCheckpoint = (id: string) => st.checkpoints.find((c) => c.id === id && !c.rolledBack);
  const checkRollback = (req: unknown): RollbackRequest => {
    const parsed = RollbackRequestSchema.safeParse(req);
    if (!parsed.success) throw new Error(`invalid rollback request: ${issuesOf(parsed.error.issues)}`);
    if (isOver()) throw new Error(`run ${runId} has ${state}; fork it instead`);
    if (!liveCheckpoint(parsed.data.checkpoint)) {
      const known = st.checkpoints.filter((c) => !c.rolledBack).map((c) => c.id);
      throw new Error(
        `unknown checkpoint "${parsed.data.checkpoint}"; available: ${known.length ? known.join(', ') : 'none yet'}`,
      );
    }
    return parsed.data;
  };
  const requestRollback = (req: RollbackRequest, source: string) => {
    pendingRollback = { ...req, source };
    phaseScope?.cancel();
  };
  const checkRaise = (req: unknown): BudgetRaiseRequest => {
    const parsed = BudgetRaiseRequestSchema.safeParse(req);
    if (!parsed.success) throw new Error(`invalid raiseBudget request: ${issuesOf(parsed.error.issues)}`);
    if (isOver()) throw new Error(`run ${runId} has ${state}; its budget can no longer change`);
    const { scope } = parsed.data;
    if (scope.phase !== undefined) {
      const phase = phases.find((p) => p.name === scope.phase);
      if (!phase) {
        throw new Error(
          `run ${runId} has no phase "${scope.phase}"; phases: ${phases.map((p) => p.name).join(', ')}`,
        );
      }
      const ids = phaseAgentIds(phase);
      if (scope.level === 'agent' && !ids.includes(scope.agent ?? '')) {
        throw new Error(`phase "${phase.name}" has no agent "${scope.agent}"; agents: ${ids.join(', ')}`);
      }
    }
    return parsed.data;
  };
  const checkApprove = (req: unknown): ApproveRequest => {
    const parsed = ApproveRequestSchema.safeParse(req);
    if (!parsed.success) throw new Error(`invalid approve request: ${issuesOf(parsed.error.issues)}`);
    if (!awaitingApproval || awaitingApproval.decision) {
      throw new Error(`run ${runId} is not waiting for an approval (state: ${effectiveState()})`);
    }
    return parsed.data;
  };

  setHandler(rollbackSignal, (req) => {
    try {
      requestRollback(checkRollback(req), 'signal');
    } catch (err) {
      // A signal cannot be refused to its sender, so the refusal is recorded where status shows it.
      const reason = (err as Error).message;
      // Kept short: a sender may flood the run with refused signals.
      rejected.push({ at: new Date().toISOString(), reason: cutText(reason, 500) });
      if (rejected.length > 20) rejected.splice(0, rejected.length - 20);
      // The request goes to the audit as it came (cut to the entry bound), whatever its shape or size.
      audit.record('rollback', { event: 'refused', reason, request: req }, OPERATOR);
      // A flood of bad signals must not flood the log (the audit has every one): the first few, then 1 in 100.
      refusedSignals += 1;
      if (refusedSignals <= 5 || refusedSignals % 100 === 0) {
        log.warn('rollback signal refused', { runId, reason: cutText(reason, 300), refused: refusedSignals });
      }
    }
  });
  setHandler(
    rollbackUpdate,
    async (req): Promise<RollbackResult> => {
      const valid = checkRollback(req);
      const target = rollbackRequestsServed + 1;
      requestRollback(valid, 'update');
      await condition(() => rollbackRequestsServed >= target);
      const cp = liveCheckpoint(valid.checkpoint) ?? st.checkpoints.find((c) => c.id === valid.checkpoint);
      return { checkpoint: valid.checkpoint, resumesAt: cp ? phases[cp.phaseIndex + 1]?.name : undefined };
    },
    { validator: (req) => void checkRollback(req) },
  );
  setHandler(
    raiseBudgetUpdate,
    (req) => {
      const valid = checkRaise(req);
      const previous = getLimit(st.ledger, valid.scope);
      st.ledger = setLimit(st.ledger, valid.scope, { usd: valid.usd, tokens: valid.tokens });
      const wasPaused = [...pauses.keys()].some((k) => k.startsWith('budget '));
      budgetVersion += 1;
      const limit = getLimit(st.ledger, valid.scope);
      audit.record(
        'budget',
        { event: 'raise', scope: valid.scope, previous, limit, wasPaused },
        valid.actor ?? OPERATOR,
      );
      log.info('budget changed', { runId, scope: valid.scope, limit });
      // Running metered agents get the new limits; those paused by a refusal resume in their own session.
      for (const [workflowId, m] of runningMeters) {
        if (budgetPausedAgents.delete(workflowId)) {
          pauses.delete(`budget ${m.phase}/${m.agent}`);
          audit.record('budget', { event: 'resume', phase: m.phase, agent: m.agent });
        }
        getExternalWorkflowHandle(workflowId)
          .signal(agentBudgetLimitsSignal, limitsFor(st.ledger, m.phase, m.agent))
          .catch((err: unknown) =>
            log.warn('could not send limits to agent', { workflowId, err: String(err) }),
          );
      }
      return { scope: valid.scope, limit, wasPaused };
    },
    { validator: (req) => void checkRaise(req) },
  );
  setHandler(
    approveUpdate,
    (req) => {
      const valid = checkApprove(req);
      const waiting = awaitingApproval!;
      waiting.decision = { note: valid.note, approver: valid.approver };
      audit.record(
        'approval',
        { event: 'approved', phase: waiting.phase, gates: waiting.gates, note: valid.note },
        valid.approver ?? OPERATOR,
      );
      return { phase: waiting.phase, gates: waiting.gates };
    },
    { validator: (req) => void checkApprove(req) },
  );
  setHandler(agentBudgetPausedSignal, async (p) => {
    const m = runningMeters.get(p.workflowId);
    if (!m) return;
    const scope: BudgetScope =
      p.level === 'run'
        ? { level: 'run' }
        : p.level === 'phase'
          ? { level: 'phase', phase: p.phase }
          : { level: 'agent', phase: p.phase, agent: p.agent };
    // What the agent spent so far goes into the ledger first, so the paused run shows it.
    const seen = budgetVersion;
    chargeMeter(m.key, m.phase, m.agent, await meter.readMeter({ runId, meterId: m.meterId }));
    // Ended meanwhile, or a raise already sent new limits: nothing waits any more.
    if (!runningMeters.has(p.workflowId) || budgetVersion !== seen) return;
    budgetPausedAgents.add(p.workflowId);
    pauses.set(`budget ${m.phase}/${m.agent}`, `${p.reason}; raise it with: ${raiseCommand(scope, p.unit)}`);
    audit.record('budget', { event: 'pause', reason: p.reason, phase: m.phase, agent: m.agent, scope });
    log.warn('paused: budget exhausted', { runId, phase: m.phase, agent: m.agent, reason: p.reason });
  });
  setHandler(checkpointsQuery, () => st.checkpoints);
  setHandler(phaseResultsQuery, () => st.phaseResults);
  setHandler(statusQuery, (): RunStatus => buildStatus());
  setHandler(auditQuery, (req) => audit.page(req).entries);
  setHandler(auditHeadQuery, () => audit.head());
  setHandler(budgetQuery, () => ({
    runId,
    state: effectiveState(),
    pausedReason: pausedReason(),
    onExceeded,
    report: ledgerReport(st.ledger),
    ledger: st.ledger,
  }));

  function effectiveState(): RunState {
    return pauses.size > 0 && state === 'running' ? 'paused' : state;
  }

  function pausedReason(): string | undefined {
    if (pauses.size > 0) return [...pauses.values()].join('; ');
    return rejected.length ? `last refused request: ${rejected[rejected.length - 1]?.reason}` : undefined;
  }

  function totals(): RunStatus['totals'] {
    // Rolled-back work still cost money: totals include every attempt.
    // Earlier executions' attempts are summed in `spent`; their carried rows hold no usage.
    let usage = { ...st.spent.usage };
    let costUsd = st.spent.costUsd;
    for (const r of st.phaseResults) {
      usage = addUsage(usage, r.usage);
      costUsd += r.costUsd;
    }
    return { usage, costUsd: round6(costUsd), tokens: totalTokens(usage) };
  }

  function phaseRows(): RunStatus['phases'] {
    return phases.map((p, i) => {
      const latest = [...st.phaseResults].reverse().find((r) => r.index === i);
      const status = latest
        ? latest.status === 'rolled_back' && i >= st.nextPhase
          ? 'pending'
          : latest.status
        : 'pending';
      return { name: p.name, status, attempt: latest?.attempt ?? 0, checkpoint: latest?.checkpoint };
    });
  }

  function buildStatus(): RunStatus {
    const shown = Math.min(st.nextPhase + 1, phases.length);
    return {
      runId,
      project: spec.project.name,
      state: effectiveState(),
      currentPhase,
      step: `step ${shown}/${phases.length}`,
      phases: phaseRows(),
      agents: [...agentRows.values()],
      checkpoints: st.checkpoints,
      rollbacks: st.rollbacks,
      totals: totals(),
      pausedReason: pausedReason(),
      workspace: input.workspace,
      outputsDir: input.outputsDir,
      forkedFrom: input.forkedFrom
        ? { runId: input.forkedFrom.runId, checkpoint: input.forkedFrom.checkpoint }
        : undefined,
      continuedAsNew: st.continuedAsNew,
    };
  }

  /** Ends the run as failed: records it, writes the manifest and the audit trail, then throws. */
  async function failRun(message: string, type: string, details: Record<string, unknown>): Promise<never> {
    state = 'failed';
    log.error('run failed', { runId, type, message });
    audit.record('run', { event: 'failed', type, message });
    await CancellationScope.nonCancellable(async () => {
      await writeRunManifest();
      await audit.flush();
    });
    throw ApplicationFailure.nonRetryable(message, type, details);
  }

  // ---- budgets ----

  /**
   * An exhausted budget: fails the run (policy `fail`) or pauses the caller until `raiseBudget` changes a
   * limit (policy `pause`). The caller re-checks afterwards and may pause again.
   */
  async function budgetStop(
    reason: string,
    exceeded: BudgetExceeded | undefined,
    where: { phase: string; agent: string },
  ): Promise<void> {
    if (onExceeded === 'fail') {
      await failRun(`budget exceeded: ${reason}`, 'BudgetExceeded', { ...where, exceeded });
    }
    const id = `budget ${where.phase}/${where.agent}`;
    // Taken before anything awaits: a raise that arrives while the pause is being written still counts.
    const seen = budgetVersion;
    pauses.set(id, `${reason}; raise it with: ${raiseHint(exceeded, where)}`);
    audit.record('budget', { event: 'pause', reason, ...where, exceeded });
    log.warn('paused: budget exhausted', { runId, ...where, reason });
    try {
      await audit.flush();
      await condition(() => budgetVersion > seen);
    } finally {
      pauses.delete(id);
    }
    audit.record('budget', { event: 'resume', ...where });
  }

  function raiseHint(e: BudgetExceeded | undefined, where: { phase: string; agent: string }): string {
    return raiseCommand(e?.scope ?? { level: 'agent', ...where }, e?.unit ?? 'usd');
  }

  function raiseCommand(scope: BudgetScope, unitName: 'usd' | 'tokens'): string {
    const unit = unitName === 'tokens' ? '--max-tokens <n>' : '--max-usd <usd>';
    const at = `${scope.phase ? ` --phase ${scope.phase}` : ''}${scope.agent ? ` --agent ${scope.agent}` : ''}`;
    return `orchestrator budget set --run ${runId} ${unit}${at}`;
  }

  /**
   * Charges what a meter recorded beyond what was already charged under `key` (a paused agent is charged
   * while it waits, the rest when it ends), in exact micro-dollars on the served models.
   */
  function chargeMeter(key: string, phase: string, agent: string, m: MeterSummary): { microUsd: number } {
    const r = chargeFromMeter(st.ledger, meteredCharged.get(key) ?? {}, { key, phase, agent }, m);
    st.ledger = r.ledger;
    meteredCharged.set(key, r.charged);
    const { microUsd, unknown } = r;
    if (microUsd > 0 || unknown.length > 0) {
      audit.record('budget', {
        event: 'charge',
        key,
        phase,
        agent,
        costUsd: microUsd / 1e6,
        microUsd,
        models: Object.fromEntries(
          Object.entries(m.models).map(([model, row]) => [model, row.microUsd / 1e6]),
        ),
        ...(unknown.length > 0
          ? {
              unknownModels: unknown,
            }
          : {}),
      });
    }
    return { microUsd };
  }

  /** Reads an ended agent start's meter (even while the run is being cancelled) and charges the rest. */
  async function settleMetered(
    key: string,
    workflowId: string,
    phase: string,
    agent: string,
    meterId: string,
  ): Promise<Spend> {
    const m = await CancellationScope.nonCancellable(() => meter.readMeter({ runId, meterId }));
    chargeMeter(key, phase, agent, m);
    st.ledger = release(st.ledger, key);
    meteredCharged.delete(key);
    runningMeters.delete(workflowId);
    if (budgetPausedAgents.delete(workflowId)) pauses.delete(`budget ${phase}/${agent}`);
    const models: NonNullable<Spend['models']> = Object.fromEntries(
      Object.entries(m.models).map(([model, r]) => [model, { usage: r.usage, costUsd: r.microUsd / 1e6 }]),
    );
    return { usage: m.usage, costUsd: m.microUsd / 1e6, models };
  }

  /** Records what an agent child spent (per model) and closes its reservation. */
  function settle(key: string, phase: string, agent: AgentSpec & { id: string }, spend: Spend): void {
    const parts = chargeParts(spend, agent.model ?? 'unattributed');
    for (const p of parts) {
      st.ledger = charge(st.ledger, {
        key: `${key}@${p.model}`,
        phase,
        agent: agent.id,
        model: p.model,
        usage: p.usage,
        costUsd: p.costUsd,
      });
    }
    st.ledger = release(st.ledger, key);
    if (parts.length > 0) {
      audit.record('budget', {
        event: 'charge',
        key,
        phase,
        agent: agent.id,
        costUsd: round6(parts.reduce((s, p) => s + p.costUsd, 0)),
        tokens: parts.reduce((s, p) => s + totalTokens(p.usage), 0),
        models: Object.fromEntries(parts.map((p) => [p.model, round6(p.costUsd)])),
      });
    }
  }

  /**
   * Whether a failed agent stopped because of its budget: a level of the ledger is exhausted now, or the
   * agent said so (the CLI's `error_max_budget_usd`).
   */
  function budgetFailure(
    phase: string,
    agent: string,
    r: AgentResult,
  ): { reason: string; exceeded?: BudgetExceeded } | undefined {
    const probe = reserve(st.ledger, { key: '\u0000probe', phase, agent, estimateUsd: 0, estimateTokens: 0 });
    if (!probe.ok) return { reason: describeExceeded(probe.exceeded), exceeded: probe.exceeded };
    // Recognised by failure type. Only histories from before failure types existed match the text.
    const byType = patched('failure-types');
    if (byType ? isBudgetFailure(r.errorType) : /BudgetExhausted|max_budget/i.test(r.error ?? '')) {
      return {
        reason: `agent "${agent}" in phase "${phase}" ran out of budget: ${(r.error ?? '').slice(0, 200)}`,
      };
    }
    return undefined;
  }

  // ---- phases ----

  async function runPhase(index: number, phase: PhaseSpec, result: PhaseResult): Promise<PhaseOutcome> {
    const ids = phaseAgentIds(phase);
    const agents = phase.agents.map((a, i) => ({ ...a, id: ids[i]! }));
    // Attempts that ran out of budget and were run again after `raiseBudget`: kept for the record.
    const superseded: AgentResult[] = [];
    const account = (r: Spend) => {
      result.usage = addUsage(result.usage, r.usage);
      result.costUsd = round6(result.costUsd + r.costUsd);
    };
    const run = async (i: number, passedOutput: string | undefined): Promise<AgentResult> => {
      const agent = agents[i]!;
      const workflowId = agentWorkflowId(runId, phase.name, agent.id);
      const row: AgentStatusRow = {
        id: agent.id,
        role: agent.role,
        phase: phase.name,
        workflowId,
        state: 'pending',
      };
      agentRows.set(workflowId, row);
      for (;;) {
        // A fresh key per child start: a re-run after a rollback or a budget raise is a new charge.
        const n = (st.agentAttempts[workflowId] ?? 0) + 1;
        const key = `${workflowId}#${n}`;
        // Agents report their cost only at the end, so nothing is held up front: the reservation marks
        // the agent in flight and is refused when a level has nothing left.
        const reserved = reserve(st.ledger, {
          key,
          phase: phase.name,
          agent: agent.id,
          estimateUsd: 0,
          estimateTokens: 0,
        });
        if (!reserved.ok) {
          const reason = describeExceeded(reserved.exceeded);
          row.state = 'pending';
          row.error = reason;
          audit.record('spawn_refused', { phase: phase.name, agent: agent.id, workflowId, reason });
          audit.record('budget', {
            event: 'reserve_refused',
            key,
            phase: phase.name,
            agent: agent.id,
            exceeded: reserved.exceeded,
          });
          await budgetStop(reason, reserved.exceeded, { phase: phase.name, agent: agent.id });
          continue;
        }
        st.ledger = reserved.ledger;
        st.agentAttempts[workflowId] = n;
        const left = remaining(st.ledger, phase.name, agent.id, key);
        const metered = patched(METERED);
        const meterId = `${agentFileId(phase.name, agent.id)}-${n}`;
        if (metered) runningMeters.set(workflowId, { key, meterId, phase: phase.name, agent: agent.id });
        row.state = 'running';
        row.error = undefined;
        audit.record('spawn', {
          phase: phase.name,
          agent: agent.id,
          role: agent.role,
          backend: agent.backend,
          workflowId,
          attempt: n,
          reservation: key,
          ...(left.usd !== undefined ? { maxBudgetUsd: left.usd } : {}),
          ...(left.tokens !== undefined ? { remainingTokens: left.tokens } : {}),
        });
        const childInput: AgentWorkflowInput = {
          runId,
          phase: phase.name,
          agent,
          workspace: input.workspace,
          phasePrompt: phase.prompt,
          projectName: spec.project.name,
          requirements: spec.requirements,
          passedOutput,
          env: {
            ORCHESTRATOR_RUN_ID: runId,
            ORCHESTRATOR_AGENT_ID: workflowId,
            ORCHESTRATOR_PHASE: phase.name,
            ORCHESTRATOR_WORKSPACE: input.workspace,
          },
          ...(left.usd !== undefined ? { maxBudgetUsd: left.usd } : {}),
          ...(metered
            ? {
                meter: { id: meterId, limits: limitsFor(st.ledger, phase.name, agent.id) },
                onBudgetExceeded: onExceeded,
              }
            : {}),
          outputsDir: input.outputsDir,
        };
        let r: AgentResult;
        try {
          r = await executeChild(agentWorkflow, { workflowId, args: [childInput] });
          for (const t of r.refusedTools ?? []) {
            audit.record(
              'tool_refused',
              { phase: phase.name, agent: agent.id, tool: t.tool, turn: t.turn },
              workflowId,
            );
          }
          row.state = r.status === 'completed' ? 'completed' : 'failed';
          row.costUsd = r.costUsd;
          row.error = r.error;
        } catch (err) {
          const reported = reportedSpend(err);
          if (isCancellation(err)) {
            if (metered) {
              // Cancelled, rolled back or the run stopped: charged exactly what the agent was served.
              account(await settleMetered(key, workflowId, phase.name, agent.id, meterId));
            } else {
              settle(key, phase.name, agent, reported ?? { usage: ZERO_USAGE, costUsd: 0 });
              if (reported) account(reported);
            }
            row.state = 'cancelled';
            throw err;
          }
          row.state = 'failed';
          row.error = err instanceof ChildWorkflowFailure ? (err.cause?.message ?? err.message) : String(err);
          r = failedAgent(agent.id, agent.role, agent.backend, row.error, reported);
        }
        if (metered) {
          const spend = await settleMetered(key, workflowId, phase.name, agent.id, meterId);
          r = { ...r, usage: spend.usage, costUsd: spend.costUsd, models: spend.models };
          row.costUsd = r.costUsd;
        } else {
          settle(key, phase.name, agent, r);
        }
        account(r);
        if (r.status !== 'completed') {
          const stop = budgetFailure(phase.name, agent.id, r);
          if (stop) {
            superseded.push(r);
            row.state = 'pending';
            row.error = stop.reason;
            await budgetStop(stop.reason, stop.exceeded, { phase: phase.name, agent: agent.id });
            continue;
          }
        }
        return r;
      }
    };
    const outcome = await runStrategy(agents.length, phase.strategy, run, {
      ok: (r) => r.status === 'completed',
      output: (r) => r.summary,
    });
    for (const i of outcome.skipped) {
      const a = agents[i]!;
      agentRows.set(agentWorkflowId(runId, phase.name, a.id), {
        id: a.id,
        role: a.role,
        phase: phase.name,
        workflowId: agentWorkflowId(runId, phase.name, a.id),
        state: 'skipped',
      });
    }
    result.agents = [...superseded, ...outcome.results];
    const failed = outcome.results.filter((r) => r.status !== 'completed');
    // fallback succeeds when any attempt succeeded; every other strategy needs all its agents.
    const phaseOk =
      phase.strategy.type === 'fallback'
        ? outcome.results.some((r) => r.status === 'completed')
        : failed.length === 0;
    if (!phaseOk) {
      result.errors.push(...failed.map((r) => `agent ${r.agentId}: ${r.error ?? r.status}`));
      return { kind: 'failed' };
    }
    if (phase.gates.length > 0) {
      const verdict = await runGates(index, phase, result);
      if (verdict) return verdict;
    }
    const cpId = `CP${st.cpCounter + 1}`;
    const cp = await checkpointing.checkpointPhase({
      workspace: input.workspace,
      outputsDir: input.outputsDir,
      runId,
      phase: phase.name,
      checkpoint: cpId,
      label: `post-${phase.name}`,
      artifacts: phase.artifacts,
    });
    // Counts only: the list is in the manifest. A result recorded before totals existed carries the list.
    const legacy = (cp as { files?: { size: number }[] }).files;
    result.artifactTotals = cp.totals ?? {
      files: legacy?.length ?? 0,
      bytes: legacy?.reduce((n, f) => n + f.size, 0) ?? 0,
    };
    if (!cp.ok || !cp.commit) {
      result.errors.push(...cp.errors);
      if (cp.errorCount !== undefined && cp.errorCount > cp.errors.length)
        result.errors.push(`… and ${cp.errorCount - cp.errors.length} more artifact error(s)`);
      return { kind: 'failed' };
    }
    st.cpCounter += 1;
    const checkpoint: Checkpoint = {
      id: cpId,
      label: `post-${phase.name}`,
      phase: phase.name,
      phaseIndex: index,
      commit: cp.commit,
      manifestPath: cp.manifestPath ?? '',
      ...(cp.manifestSha256 ? { manifestSha256: cp.manifestSha256 } : {}),
      createdAt: new Date().toISOString(),
      runId,
    };
    st.checkpoints.push(checkpoint);
    result.checkpoint = cpId;
    result.outputRef = cp.manifestPath;
    audit.record('checkpoint', {
      id: cpId,
      phase: phase.name,
      attempt: result.attempt,
      commit: cp.commit,
      manifest: cp.manifestPath,
      files: result.artifactTotals.files,
    });
    return { kind: 'completed' };
  }

  /**
   * Evaluates the phase's gates and decides what a failure means. Returns undefined when the phase may
   * take its checkpoint (every gate passed, or a human approved the failures).
   */
  async function runGates(
    index: number,
    phase: PhaseSpec,
    result: PhaseResult,
  ): Promise<PhaseOutcome | undefined> {
    let evaluation: Awaited<ReturnType<typeof governance.evaluateGates>>;
    try {
      evaluation = await governance.evaluateGates({
        workspace: input.workspace,
        phase: phase.name,
        gates: phase.gates,
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const message = failureMessage(err);
      audit.record('gate', { phase: phase.name, attempt: result.attempt, passed: false, error: message });
      result.errors.push(`gates could not be evaluated: ${message}`);
      return { kind: 'failed' };
    }
    for (const g of evaluation.results) {
      audit.record('gate', {
        phase: phase.name,
        attempt: result.attempt,
        gate: g.id,
        kind: g.kind,
        passed: g.passed,
        on_fail: g.on_fail,
        summary: g.summary,
        evidence: g.evidence,
      });
    }
    const failed = evaluation.results.filter((g) => !g.passed);
    if (failed.length === 0) return undefined;
    const errors = failed.map(
      (g) =>
        `gate "${g.id}" (${g.kind}) failed: ${g.summary}; evidence: ${JSON.stringify(g.evidence).slice(0, 4000)}`,
    );
    const retryKey = (id: string) => `${index}:${id}`;
    const used = (id: string) => st.gateRetries[retryKey(id)] ?? 0;
    const recoverable = failed.filter((g) => g.on_fail === 'retry_phase' || g.on_fail === 'rollback');
    const exhausted = recoverable.filter((g) => used(g.id) >= (g.max_retries ?? 1));
    const fatal = failed.filter((g) => g.on_fail === 'fail');
    const decide = (action: string, gates: string[]) =>
      audit.record('gate', { event: 'decision', phase: phase.name, attempt: result.attempt, action, gates });

    if (fatal.length > 0 || exhausted.length > 0) {
      result.errors.push(
        ...errors,
        ...exhausted.map((g) => `gate "${g.id}": gave up after ${used(g.id)} ${g.on_fail} attempt(s)`),
      );
      decide(
        'fail',
        [...fatal, ...exhausted].map((g) => g.id),
      );
      return { kind: 'failed' };
    }
    if (recoverable.length > 0) {
      for (const g of recoverable) st.gateRetries[retryKey(g.id)] = used(g.id) + 1;
      result.errors.push(...errors);
      const rollback = recoverable.some((g) => g.on_fail === 'rollback');
      const gates = recoverable.map((g) => g.id);
      decide(rollback ? 'rollback' : 'retry_phase', gates);
      return rollback ? { kind: 'rollback', gates } : { kind: 'retry', gates };
    }

    // Only pause_for_approval gates failed: a human decides.
    const gates = failed.map((g) => g.id);
    result.errors.push(...errors);
    awaitingApproval = { phase: phase.name, gates };
    pauses.set(
      'approval',
      `phase "${phase.name}" waits for approval: ${failed.map((g) => `gate "${g.id}" failed (${g.summary})`).join(', ')}; ` +
        `continue with: orchestrator governance approve --run ${runId} --note <text>`,
    );
    decide('pause_for_approval', gates);
    audit.record('approval', { event: 'requested', phase: phase.name, attempt: result.attempt, gates });
    log.warn('paused: waiting for approval', { runId, phase: phase.name, gates });
    await audit.flush();
    let decision: { note: string; approver?: string } | undefined;
    try {
      await condition(() => awaitingApproval?.decision !== undefined);
      decision = awaitingApproval?.decision;
    } finally {
      pauses.delete('approval');
      awaitingApproval = undefined;
    }
    const by = decision?.approver ?? OPERATOR;
    result.errors = result.errors.map((e) => `approved by ${by} (${decision?.note ?? ''}): ${e}`);
    return undefined;
  }

  async function performRollback(req: RollbackRequest & { source: string }): Promise<void> {
    state = 'rolling_back';
    const cp = liveCheckpoint(req.checkpoint)!;
    log.info('rolling back', { runId, checkpoint: cp.id, reason: req.reason, source: req.source });
    await CancellationScope.nonCancellable(() =>
      workspace.restoreWorkspace({ workspace: input.workspace, commit: cp.commit }),
    );
    const at = new Date().toISOString();
    for (const r of st.phaseResults) {
      if (r.index > cp.phaseIndex && r.status !== 'rolled_back') {
        r.status = 'rolled_back';
        r.rolledBackBy = cp.id;
      }
    }
    for (const c of st.checkpoints) if (c.phaseIndex > cp.phaseIndex) c.rolledBack = true;
    for (const row of agentRows.values()) {
      const idx = phases.findIndex((p) => p.name === row.phase);
      if (idx > cp.phaseIndex) agentRows.delete(row.workflowId);
    }
    st.rollbacks.push({ to: cp.id, reason: req.reason, at, fromPhase: currentPhase });
    audit.record(
      'rollback',
      { to: cp.id, commit: cp.commit, reason: req.reason, source: req.source, fromPhase: currentPhase },
      req.source === 'gate' ? 'workflow' : OPERATOR,
    );
    st.nextPhase = cp.phaseIndex + 1;
    if (req.source !== 'gate') rollbackRequestsServed += 1;
    state = 'running';
  }

  /** A `rollback` gate failed: back to the previous live checkpoint, or to the snapshot of the phase start. */
  async function gateRollback(
    index: number,
    phase: PhaseSpec,
    gates: string[],
    startCommit?: string,
  ): Promise<void> {
    const reason = `gate(s) ${gates.join(', ')} failed in phase "${phase.name}"`;
    const previous = [...st.checkpoints].reverse().find((c) => !c.rolledBack && c.phaseIndex < index);
    if (previous) {
      await performRollback({ checkpoint: previous.id, reason, source: 'gate' });
      return;
    }
    if (!startCommit)
      await failRun(`${reason}: no checkpoint to roll back to`, 'PhaseFailed', { phase: phase.name, gates });
    await CancellationScope.nonCancellable(() =>
      workspace.restoreWorkspace({ workspace: input.workspace, commit: startCommit! }),
    );
    st.rollbacks.push({
      to: `start of ${phase.name}`,
      reason,
      at: new Date().toISOString(),
      fromPhase: phase.name,
    });
    audit.record('rollback', {
      to: `start of ${phase.name}`,
      commit: startCommit,
      reason,
      source: 'gate',
      fromPhase: phase.name,
    });
  }

  // ---- main loop ----
  try {
    if (!carry) {
      audit.record('run', {
        event: 'started',
        project: spec.project.name,
        client: spec.project.client,
        phases: phases.map((p) => p.name),
        onBudgetExceeded: onExceeded,
        ...(input.forkedFrom
          ? { forkedFrom: { runId: input.forkedFrom.runId, checkpoint: input.forkedFrom.checkpoint } }
          : {}),
      });
      // Gates switched off by the client's policy or the intake (never mandatory ones: those are refused
      // before a run starts) are on record from the first entries.
      for (const w of spec.governance?.waived ?? []) {
        audit.record('governance', { event: 'gate_disabled', phase: w.phase, gate: w.gate, by: w.by });
      }
      const fork = input.forkedFrom;
      if (fork) {
        await workspace.materializeCheckpoint({
          sourceWorkspace: fork.sourceWorkspace,
          commit: fork.commit,
          targetWorkspace: input.workspace,
        });
      }
      await workspace.initWorkspace({ workspace: input.workspace, holder: runId });
      if (fork) {
        // The fork re-takes the checkpoint it starts from in its own shadow repository, under the same id,
        // so that it can roll back to it like any checkpoint of its own.
        const forkedPhase = phases[fork.phaseIndex];
        if (!forkedPhase)
          throw ApplicationFailure.nonRetryable(
            `fork: the intake has no phase ${fork.phaseIndex + 1}`,
            'InvalidFork',
          );
        const now = new Date().toISOString();
        for (let i = 0; i <= fork.phaseIndex; i++) {
          st.phaseResults.push({
            phase: phases[i]!.name,
            index: i,
            attempt: 1,
            status: 'inherited',
            startedAt: now,
            completedAt: now,
            duration_ms: 0,
            usage: { ...ZERO_USAGE },
            costUsd: 0,
            errors: [],
            agents: [],
          });
        }
        const cp = await checkpointing.checkpointPhase({
          workspace: input.workspace,
          outputsDir: input.outputsDir,
          runId,
          phase: forkedPhase.name,
          checkpoint: fork.checkpoint,
          label: `post-${forkedPhase.name}`,
          artifacts: forkedPhase.artifacts,
        });
        if (!cp.ok || !cp.commit) {
          throw ApplicationFailure.nonRetryable(
            `fork: ${fork.checkpoint} does not validate: ${cp.errors.join('; ')}`,
            'InvalidFork',
          );
        }
        st.cpCounter = Number(fork.checkpoint.slice(2));
        st.checkpoints.push({
          id: fork.checkpoint,
          label: `post-${forkedPhase.name}`,
          phase: forkedPhase.name,
          phaseIndex: fork.phaseIndex,
          commit: cp.commit,
          manifestPath: cp.manifestPath ?? '',
          createdAt: now,
          runId,
        });
        st.phaseResults[fork.phaseIndex]!.checkpoint = fork.checkpoint;
        audit.record('checkpoint', {
          id: fork.checkpoint,
          phase: forkedPhase.name,
          commit: cp.commit,
          inherited: true,
        });
        st.nextPhase = fork.phaseIndex + 1;
      }
    }
    state = 'running';
    let phasesThisRun = 0;

    while (st.nextPhase < phases.length) {
      if (pendingRollback) {
        const req = pendingRollback;
        pendingRollback = undefined;
        await performRollback(req);
        await audit.flush();
        continue;
      }
      const index = st.nextPhase;
      const phase = phases[index]!;
      currentPhase = phase.name;
      const attempt =
        Math.max(0, ...st.phaseResults.filter((r) => r.index === index).map((r) => r.attempt)) + 1;
      const result: PhaseResult = {
        phase: phase.name,
        index,
        attempt,
        status: 'running',
        startedAt: new Date().toISOString(),
        usage: { ...ZERO_USAGE },
        costUsd: 0,
        errors: [],
        agents: [],
      };
      st.phaseResults.push(result);
      if (phase.skip) {
        result.status = 'skipped';
        result.completedAt = result.startedAt;
        result.duration_ms = 0;
        st.nextPhase += 1;
        continue;
      }
      log.info('phase started', { runId, phase: phase.name, attempt });
      audit.record('phase', { event: 'started', phase: phase.name, attempt });
      // A `rollback` gate with no earlier checkpoint rolls back to the phase start: snapshot it first.
      const hasRollbackGate = phase.gates.some((g) => (g as GateView).on_fail === 'rollback');
      const startCommit =
        hasRollbackGate && !st.checkpoints.some((c) => !c.rolledBack && c.phaseIndex < index)
          ? (
              await workspace.snapshotWorkspace({
                workspace: input.workspace,
                message: `pre-${phase.name} (attempt ${attempt})`,
              })
            ).commit
          : undefined;
      let outcome = { kind: 'failed' } as PhaseOutcome;
      phaseScope = new CancellationScope();
      try {
        await phaseScope.run(async () => {
          outcome = await runPhase(index, phase, result);
          if (pendingRollback) throw new RollbackRequested();
        });
      } catch (err) {
        if (!(pendingRollback && (isCancellation(err) || err instanceof RollbackRequested))) throw err;
      } finally {
        phaseScope = undefined;
      }
      const completedAt = new Date().toISOString();
      result.completedAt = completedAt;
      result.duration_ms = Date.parse(completedAt) - Date.parse(result.startedAt);
      if (pendingRollback) {
        result.status = 'rolled_back';
        continue;
      }
      if (outcome.kind === 'failed') {
        result.status = 'failed';
        audit.record('phase', { event: 'failed', phase: phase.name, attempt, errors: result.errors });
        await failRun(`phase "${phase.name}" failed: ${result.errors.join('; ')}`, 'PhaseFailed', {
          phase: phase.name,
          errors: result.errors,
          checkpoints: st.checkpoints.map((c) => c.id),
        });
      }
      if (outcome.kind === 'retry') {
        result.status = 'failed';
        audit.record('phase', { event: 'retry', phase: phase.name, attempt, gates: outcome.gates });
        log.warn('phase gates failed: retrying the phase', {
          runId,
          phase: phase.name,
          gates: outcome.gates,
        });
        await audit.flush();
        continue;
      }
      if (outcome.kind === 'rollback') {
        result.status = 'rolled_back';
        log.warn('phase gates failed: rolling back', { runId, phase: phase.name, gates: outcome.gates });
        await gateRollback(index, phase, outcome.gates, startCommit);
        await audit.flush();
        continue;
      }
      result.status = 'completed';
      log.info('phase completed', { runId, phase: phase.name, checkpoint: result.checkpoint });
      audit.record('phase', {
        event: 'completed',
        phase: phase.name,
        attempt,
        checkpoint: result.checkpoint,
      });
      // A later visit of this phase (after a rollback) gets its gate retries afresh.
      for (const k of Object.keys(st.gateRetries)) if (k.startsWith(`${index}:`)) delete st.gateRetries[k];
      st.nextPhase += 1;
      phasesThisRun += 1;
      await audit.flush();

      if (
        st.nextPhase < phases.length &&
        (phasesThisRun >= PHASES_PER_RUN || workflowInfo().continueAsNewSuggested)
      ) {
        await condition(allHandlersFinished);
        if (!pendingRollback) {
          audit.record('run', { event: 'continued_as_new', nextPhase: phases[st.nextPhase]?.name });
          await audit.flush();
          if (patched(BOUNDED_CARRY_PATCH)) {
            // The full results of this execution go to a file; the next one carries a row per phase.
            await workspace.writeOutput({
              outputsDir: input.outputsDir,
              runId,
              relPath: resultsFile(st.continuedAsNew),
              content: JSON.stringify(st.phaseResults.filter((r) => !isCarriedRow(r))),
            });
            st.continuedAsNew += 1;
            return continueAsNew<typeof projectWorkflow>(
              { ...input, spec: compactSpec(spec) },
              packCarry(st, { ledger: st.ledger, audit: audit.carry() }, runId),
            );
          }
          st.continuedAsNew += 1;
          return continueAsNew<typeof projectWorkflow>(input, { ...st, audit: audit.carry() });
        }
      }
    }

    currentPhase = undefined;
    state = 'completed';
    // Recorded before the manifest, so that the manifest holds the trail's final head.
    audit.record('run', { event: 'completed', totals: totals(), budget: ledgerTotals(st.ledger) });
    const manifestPath = await writeRunManifest();
    await audit.flush();
    await condition(allHandlersFinished);
    return {
      runId,
      state,
      checkpoints: st.checkpoints,
      phases: phaseRows(),
      rollbacks: st.rollbacks,
      totals: totals(),
      budget: ledgerTotals(st.ledger),
      manifestPath,
    };
  } catch (err) {
    if (isCancellation(err)) {
      state = 'cancelled';
      audit.record('run', { event: 'cancelled' });
      if (patched(TRUTHFUL_END_PATCH)) await writeFinalManifest();
      await audit.flush();
    } else if (
      !(err instanceof ContinueAsNew) &&
      (state as RunState) !== 'failed' &&
      patched(TRUTHFUL_END_PATCH)
    ) {
      // Failed through an error no decision turned into failRun (an activity that gave up, a bug): the
      // run fails on the server, so status, manifest and audit say `failed` too.
      state = 'failed';
      const message = failureMessage(err);
      log.error('run failed', { runId, message });
      audit.record('run', { event: 'failed', type: (err as { type?: string }).type ?? 'Error', message });
      await writeFinalManifest();
      await audit.flush();
    }
    throw err;
  }

  /** The manifest at the run's end; a failure to write it must not replace the run's own error. */
  async function writeFinalManifest(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      try {
        await writeRunManifest();
      } catch (e) {
        log.warn('could not write the run manifest', { runId, error: failureMessage(e) });
      }
    });
  }

  async function writeRunManifest(): Promise<string> {
    const t = totals();
    const live = st.phaseResults.filter((p) => p.status === 'completed' && p.checkpoint);
    const r = await workspace.updateRunManifest({
      outputsDir: input.outputsDir,
      runId,
      project: spec.project.name,
      status: state,
      forkedFrom: input.forkedFrom
        ? { runId: input.forkedFrom.runId, checkpoint: input.forkedFrom.checkpoint }
        : undefined,
      phases: live.map((p) => p.phase),
      checkpoints: st.checkpoints
        .filter((c) => !c.rolledBack)
        .map((c) => ({ id: c.id, label: c.label, phase: c.phase, commit: c.commit, createdAt: c.createdAt })),
      costUsd: t.costUsd,
      usage: { ...t.usage },
      audit: { entries: audit.head().count, head: audit.head().head },
    });
    return r.path;
  }
}

function failedAgent(
  agentId: string,
  role: string,
  backend: string,
  error: string,
  spend?: Spend,
): AgentResult {
  const now = new Date().toISOString();
  return {
    agentId,
    role,
    backend,
    status: 'failed',
    summary: '',
    usage: spend?.usage ?? { ...ZERO_USAGE },
    costUsd: spend?.costUsd ?? 0,
    ...(spend?.models ? { models: spend.models } : {}),
    error,
    startedAt: now,
    completedAt: now,
  };
}

/**
 * Spend a child reported in its failure (an agent that was cancelled or failed may put
 * `{ usage, costUsd, models? }` in its failure's details).
 */
function reportedSpend(err: unknown): Spend | undefined {
  let cause: unknown = err;
  for (let depth = 0; depth < 3 && cause; depth++) {
    const details = (cause as { details?: unknown }).details;
    const first: unknown = Array.isArray(details) ? details[0] : undefined;
    if (first && typeof first === 'object') {
      const d = first as Partial<Spend>;
      if (typeof d.costUsd === 'number' && d.usage && typeof d.usage === 'object') {
        return { usage: cleanUsage(d.usage), costUsd: cleanUsd(d.costUsd), models: d.models };
      }
    }
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Spend split per model; whatever the per-model figures do not cover is charged to `fallbackModel`. */
function chargeParts(
  spend: Spend,
  fallbackModel: string,
): { model: string; usage: Usage; costUsd: number }[] {
  const parts: { model: string; usage: Usage; costUsd: number }[] = [];
  let costLeft = cleanUsd(spend.costUsd);
  let usageLeft = cleanUsage(spend.usage);
  for (const [model, m] of Object.entries(spend.models ?? {})) {
    const usage = cleanUsage(m.usage);
    const costUsd = cleanUsd(m.costUsd);
    if (costUsd === 0 && totalTokens(usage) === 0) continue;
    parts.push({ model, usage, costUsd });
    costLeft = Math.max(0, costLeft - costUsd);
    usageLeft = {
      input_tokens: Math.max(0, usageLeft.input_tokens - usage.input_tokens),
      output_tokens: Math.max(0, usageLeft.output_tokens - usage.output_tokens),
      cache_creation_input_tokens: Math.max(
        0,
        usageLeft.cache_creation_input_tokens - usage.cache_creation_input_tokens,
      ),
      cache_read_input_tokens: Math.max(0, usageLeft.cache_read_input_tokens - usage.cache_read_input_tokens),
    };
  }
  // Half a micro-dollar: below what the ledger can record (float noise of the subtraction).
  if (costLeft >= 5e-7 || totalTokens(usageLeft) > 0) {
    parts.push({ model: fallbackModel, usage: usageLeft, costUsd: costLeft });
  }
  return parts;
}

/** A reported amount the ledger can take: finite and non-negative (a bad figure must not wedge the run). */
function cleanUsd(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

function cleanUsage(u: Partial<Usage> | undefined): Usage {
  const t = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.round(n) : 0);
  return {
    input_tokens: t(u?.input_tokens),
    output_tokens: t(u?.output_tokens),
    cache_creation_input_tokens: t(u?.cache_creation_input_tokens),
    cache_read_input_tokens: t(u?.cache_read_input_tokens),
  };
}

function failureMessage(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${(cause as { type?: string }).type ?? cause.name}: ${cause.message}`;
  return err instanceof Error ? err.message : String(err);
}

function issuesOf(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((i) => `${i.path.map(String).join('.') || 'input'}: ${i.message}`).join('; ');
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
