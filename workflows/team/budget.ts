/**
 * The team's budget: a ledger (src/shared/budget) whose phases are roles and whose agents are the team's
 * agents (src/shared/team-budget). Each metered agent's spend is charged from its meter as its rounds
 * end and when it ends; a limit it hits pauses it in its own session until update `raiseBudget` sends
 * new limits.
 */
import { CancellationScope, getExternalWorkflowHandle, log } from '@temporalio/workflow';
import {
  getLimit,
  limitsFor,
  report as ledgerReport,
  setLimit,
  type BudgetScope,
} from '../../src/shared/budget';
import { zodIssueText } from '../../src/shared/zod-issues';
import { OPERATOR } from '../../src/shared/identity';
import { chargeFromMeter } from '../../src/shared/meter-charge';
import {
  agentBudgetLimitsSignal,
  BudgetRaiseRequestSchema,
  type AgentBudgetPaused,
  type BudgetRaiseRequest,
} from '../../src/shared/messages';
import type { TeamState } from '../../src/shared/team';
import { checkTeamScope, teamRaiseCommand, teamReason } from '../../src/shared/team-budget';
import { describe } from './failures';
import { meters } from './proxies';
import type { TeamRun } from './run';
import { budgetState, isOver } from './status';
import type { AgentRecord } from './types';

/** The ledger scope a budget refusal names, for the agent it held. */
export function pauseScope(level: string, rec: Pick<AgentRecord, 'id' | 'role'>): BudgetScope {
  return level === 'run'
    ? { level: 'run' }
    : level === 'phase'
      ? { level: 'phase', phase: rec.role }
      : { level: 'agent', phase: rec.role, agent: rec.id };
}

/** Why a paused agent waits, and the command that raises the limit it hit. */
export function pauseText(
  runId: string,
  rec: Pick<AgentRecord, 'id' | 'role'>,
  scope: BudgetScope,
  reason: string,
  unit: 'usd' | 'tokens',
): string {
  // A team or role limit holds every agent that hits it: say who waits.
  const who = scope.level === 'agent' ? '' : ` (${rec.id} waits)`;
  return `${reason}${who}; raise it with: ${teamRaiseCommand(runId, scope, unit)}`;
}

/** The facts a `raiseBudget` request is checked against. */
export interface RaiseContext {
  runId: string;
  state: TeamState;
  /** The team keeps a ledger (teams started before team budgets have none). */
  budgets: boolean;
  roles: string[];
  agents: readonly AgentRecord[];
}

/** A valid `raiseBudget` request, or an error naming what is wrong with it. */
export function checkTeamRaise(req: unknown, ctx: RaiseContext): BudgetRaiseRequest {
  const parsed = BudgetRaiseRequestSchema.safeParse(req);
  if (!parsed.success) {
    throw new Error(`invalid raiseBudget request: ${zodIssueText(parsed.error, 'request')}`);
  }
  if (!ctx.budgets)
    throw new Error(`team run ${ctx.runId} was started before team budgets: it has none to change`);
  if (isOver(ctx.state))
    throw new Error(`team run ${ctx.runId} has ${ctx.state}; its budget can no longer change`);
  const problem = checkTeamScope(parsed.data.scope, {
    runId: ctx.runId,
    roles: ctx.roles,
    agents: ctx.agents,
  });
  if (problem) throw new Error(problem);
  return parsed.data;
}

/** Checks a `raiseBudget` request against the team as it is now. */
export function checkRaise(run: TeamRun, req: unknown): BudgetRaiseRequest {
  return checkTeamRaise(req, {
    runId: run.runId,
    state: run.state,
    budgets: run.budgets,
    roles: Object.keys(run.policy.roles),
    agents: run.records,
  });
}

/** Applies a valid raise: new limits for every running agent; those a budget held resume. */
export function raiseBudget(run: TeamRun, valid: BudgetRaiseRequest) {
  const previous = getLimit(run.ledger, valid.scope);
  run.ledger = setLimit(run.ledger, valid.scope, { usd: valid.usd, tokens: valid.tokens });
  const wasPaused = run.pauses.size > 0;
  run.budgetVersion += 1;
  const limit = getLimit(run.ledger, valid.scope);
  run.record('budget', valid.actor ?? OPERATOR, {
    event: 'raise',
    scope: valid.scope,
    previous,
    limit,
    wasPaused,
  });
  log.info('budget changed', { runId: run.runId, scope: valid.scope, limit });
  // Running agents get the new limits; those a budget held resume in their own session.
  for (const rec of run.records) {
    const m = run.metered.get(rec.id);
    if (!m?.running) continue;
    if (m.paused) {
      m.paused = false;
      run.pauses.delete(rec.id);
      run.record('budget', 'workflow', { event: 'resume', agentId: rec.id, role: rec.role });
    }
    getExternalWorkflowHandle(rec.workflowId)
      .signal(agentBudgetLimitsSignal, limitsFor(run.ledger, rec.role, rec.id))
      .catch((err: unknown) =>
        log.warn('could not send limits to agent', { agentId: rec.id, error: describe(err) }),
      );
  }
  return { scope: valid.scope, limit, wasPaused };
}

/** An agent's model request was refused by a limit: charge what it spent, then hold it until a raise. */
export async function budgetPaused(run: TeamRun, p: AgentBudgetPaused): Promise<void> {
  const rec = run.records.find((r) => r.workflowId === p.workflowId);
  const m = rec ? run.metered.get(rec.id) : undefined;
  if (!rec || !m?.running) return;
  const scope = pauseScope(p.level, rec);
  // What the agent spent so far goes into the ledger first, so the paused team shows it.
  const seen = run.budgetVersion;
  await chargeAgent(run, rec);
  // Ended meanwhile, or a raise already sent new limits: nothing waits any more.
  if (!m.running || run.budgetVersion !== seen) return;
  m.paused = true;
  const reason = teamReason(p.reason, rec.role);
  run.pauses.set(rec.id, pauseText(run.runId, rec, scope, reason, p.unit));
  run.record('budget', 'workflow', { event: 'pause', reason, agentId: rec.id, role: rec.role, scope });
  log.warn('agent paused: budget exhausted', { runId: run.runId, agentId: rec.id, reason });
}

/** What query `budget` answers. */
export function budgetStatus(run: TeamRun) {
  return {
    runId: run.runId,
    kind: 'team' as const,
    state: budgetState(run.state, run.pauses.size),
    pausedReason: run.pausedReason(),
    onExceeded: 'pause' as const,
    report: ledgerReport(run.ledger),
    ledger: run.ledger,
  };
}

/** Reads an agent's meter and charges the ledger what it was served since the last read. */
export function chargeAgent(run: TeamRun, rec: AgentRecord): Promise<void> {
  const m = run.metered.get(rec.id);
  if (!m) return Promise.resolve();
  run.reading += 1;
  m.chain = m.chain.then(async () => {
    try {
      const reading = await CancellationScope.nonCancellable(() =>
        meters.readMeter({ runId: run.runId, meterId: rec.id }),
      );
      const r = chargeFromMeter(
        run.ledger,
        m.charged,
        { key: rec.workflowId, phase: rec.role, agent: rec.id },
        reading,
      );
      run.ledger = r.ledger;
      m.charged = r.charged;
      if (r.microUsd > 0 || r.unknown.length > 0) {
        run.record('budget', 'workflow', {
          event: 'charge',
          agentId: rec.id,
          role: rec.role,
          costUsd: r.microUsd / 1e6,
          microUsd: r.microUsd,
          ...(r.unknown.length > 0 ? { unknownModels: r.unknown } : {}),
        });
      }
    } catch (err) {
      log.warn('meter not read', { runId: run.runId, agentId: rec.id, error: describe(err) });
    } finally {
      run.reading -= 1;
    }
  });
  return m.chain;
}

/** An ended agent: the rest of its meter is charged; its cost is the ledger's, to the micro-dollar. */
export async function settleAgent(run: TeamRun, rec: AgentRecord): Promise<void> {
  const m = run.metered.get(rec.id);
  if (!m) return;
  await chargeAgent(run, rec);
  m.running = false;
  m.paused = false;
  run.pauses.delete(rec.id);
  const spent = ledgerReport(run.ledger).agents.find((a) => a.phase === rec.role && a.agent === rec.id);
  rec.costUsd = spent?.usd ?? 0;
}
