/**
 * The run's money: charging agents to the ledger (from their meters, or from what they reported), and
 * what an exhausted budget does (fail the run or pause until `raiseBudget`). The ledger's rules are in
 * src/shared/budget; this module applies them to the run.
 */
import { CancellationScope, condition, log, patched } from '@temporalio/workflow';
import { isBudgetFailure } from '../../src/shared/failures';
import {
  charge,
  describeExceeded,
  release,
  reserve,
  round6,
  type BudgetExceeded,
  type BudgetScope,
  type Ledger,
} from '../../src/shared/budget';
import { chargeFromMeter } from '../../src/shared/meter-charge';
import { type AgentResult, totalTokens } from '../../src/shared/run';
import type { AgentSpec } from '../../src/shared/spec';
import { countBudgetPause, countCharge } from './metrics';
import { meter, type MeterSummary } from './proxies';
import type { ProjectRun } from './run';
import { chargeParts, type Spend } from './spend';

/** Where a budget stopped: the phase and agent. */
export interface BudgetPlace {
  phase: string;
  agent: string;
}

/** A budget stop: why, and which level ran out when the ledger knows. */
export interface BudgetStop {
  reason: string;
  exceeded?: BudgetExceeded;
}

/** The command an operator runs to raise the limit that stopped the run. */
export function raiseCommand(runId: string, scope: BudgetScope, unitName: 'usd' | 'tokens'): string {
  const unit = unitName === 'tokens' ? '--max-tokens <n>' : '--max-usd <usd>';
  const at = `${scope.phase ? ` --phase ${scope.phase}` : ''}${scope.agent ? ` --agent ${scope.agent}` : ''}`;
  return `orchestrator budget set --run ${runId} ${unit}${at}`;
}

/** The raise command for a stop: the exhausted level when known, else the agent's own budget. */
export function raiseHint(runId: string, e: BudgetExceeded | undefined, where: BudgetPlace): string {
  return raiseCommand(runId, e?.scope ?? { level: 'agent', ...where }, e?.unit ?? 'usd');
}

/** The ledger scope a paused agent names (`level` with the phase and agent it applies to). */
export function pausedScope(p: {
  level: 'run' | 'phase' | 'agent';
  phase: string;
  agent: string;
}): BudgetScope {
  return p.level === 'run'
    ? { level: 'run' }
    : p.level === 'phase'
      ? { level: 'phase', phase: p.phase }
      : { level: 'agent', phase: p.phase, agent: p.agent };
}

/**
 * Whether a failed agent stopped because of its budget: a level of the ledger is exhausted now, or the
 * agent said so. `byType()` says whether to recognise the agent's failure by its type (false only when
 * replaying histories from before failure types existed, which matched the text); it is asked only when
 * the ledger has room, as the recorded histories asked it.
 */
export function budgetFailureOf(
  ledger: Ledger,
  where: BudgetPlace,
  r: Pick<AgentResult, 'error' | 'errorType'>,
  byType: () => boolean,
): BudgetStop | undefined {
  const { phase, agent } = where;
  const probe = reserve(ledger, { key: '\u0000probe', phase, agent, estimateUsd: 0, estimateTokens: 0 });
  if (!probe.ok) return { reason: describeExceeded(probe.exceeded), exceeded: probe.exceeded };
  if (byType() ? isBudgetFailure(r.errorType) : /BudgetExhausted|max_budget/i.test(r.error ?? '')) {
    return {
      reason: `agent "${agent}" in phase "${phase}" ran out of budget: ${(r.error ?? '').slice(0, 200)}`,
    };
  }
  return undefined;
}

/** Patch id: a budget failure is recognised by its failure type, not by its message text. */
export const FAILURE_TYPES_PATCH = 'failure-types';

/** {@link budgetFailureOf} against the run's ledger, by failure type unless replaying an older history. */
export function budgetFailure(run: ProjectRun, where: BudgetPlace, r: AgentResult): BudgetStop | undefined {
  return budgetFailureOf(run.st.ledger, where, r, () => patched(FAILURE_TYPES_PATCH));
}

/**
 * An exhausted budget: fails the run (policy `fail`) or pauses the caller until `raiseBudget` changes a
 * limit (policy `pause`). The caller re-checks afterwards and may pause again.
 */
export async function budgetStop(
  run: ProjectRun,
  reason: string,
  exceeded: BudgetExceeded | undefined,
  where: BudgetPlace,
): Promise<void> {
  if (run.onExceeded === 'fail') {
    await run.failRun(`budget exceeded: ${reason}`, 'BudgetExceeded', { ...where, exceeded });
  }
  const id = `budget ${where.phase}/${where.agent}`;
  // Taken before anything awaits: a raise that arrives while the pause is being written still counts.
  const seen = run.budgetVersion;
  run.pauses.set(id, `${reason}; raise it with: ${raiseHint(run.runId, exceeded, where)}`);
  countBudgetPause(run.runId, where.phase, where.agent);
  run.audit.record('budget', { event: 'pause', reason, ...where, exceeded });
  log.warn('paused: budget exhausted', { runId: run.runId, ...where, reason });
  try {
    await run.audit.flush();
    await condition(() => run.budgetVersion > seen);
  } finally {
    run.pauses.delete(id);
  }
  run.audit.record('budget', { event: 'resume', ...where });
}

/**
 * Charges what a meter recorded beyond what was already charged under `key` (a paused agent is charged
 * while it waits, the rest when it ends), in exact micro-dollars on the served models.
 */
export function chargeMeter(
  run: ProjectRun,
  key: string,
  where: BudgetPlace,
  m: MeterSummary,
): { microUsd: number } {
  const { phase, agent } = where;
  const before = run.meteredCharged.get(key) ?? {};
  const r = chargeFromMeter(run.st.ledger, before, { key, phase, agent }, m);
  run.st.ledger = r.ledger;
  for (const [model, now] of Object.entries(r.charged)) {
    const prev = Object.hasOwn(before, model) ? before[model] : undefined;
    countCharge(
      run.runId,
      { phase, agent, model },
      now.microUsd - (prev?.microUsd ?? 0),
      meterTokens(now.usage) - (prev ? meterTokens(prev.usage) : 0),
    );
  }
  run.meteredCharged.set(key, r.charged);
  const { microUsd, unknown } = r;
  if (microUsd > 0 || unknown.length > 0) {
    run.audit.record('budget', {
      event: 'charge',
      key,
      phase,
      agent,
      costUsd: microUsd / 1e6,
      microUsd,
      models: Object.fromEntries(Object.entries(m.models).map(([model, row]) => [model, row.microUsd / 1e6])),
      ...(unknown.length > 0 ? { unknownModels: unknown } : {}),
    });
  }
  return { microUsd };
}

/** Reads an ended agent start's meter (even while the run is being cancelled) and charges the rest. */
export async function settleMetered(
  run: ProjectRun,
  key: string,
  workflowId: string,
  where: BudgetPlace,
  meterId: string,
): Promise<Spend> {
  const m = await CancellationScope.nonCancellable(() => meter.readMeter({ runId: run.runId, meterId }));
  chargeMeter(run, key, where, m);
  run.st.ledger = release(run.st.ledger, key);
  run.meteredCharged.delete(key);
  run.runningMeters.delete(workflowId);
  if (run.budgetPausedAgents.delete(workflowId)) run.pauses.delete(`budget ${where.phase}/${where.agent}`);
  const models: NonNullable<Spend['models']> = Object.fromEntries(
    Object.entries(m.models).map(([model, r]) => [model, { usage: r.usage, costUsd: r.microUsd / 1e6 }]),
  );
  return { usage: m.usage, costUsd: m.microUsd / 1e6, models };
}

/** Records what an agent child spent (per model) and closes its reservation. */
export function settle(
  run: ProjectRun,
  key: string,
  phase: string,
  agent: AgentSpec & { id: string },
  spend: Spend,
): void {
  const parts = chargeParts(spend, agent.model ?? 'unattributed');
  for (const p of parts) {
    run.st.ledger = charge(run.st.ledger, {
      key: `${key}@${p.model}`,
      phase,
      agent: agent.id,
      model: p.model,
      usage: p.usage,
      costUsd: p.costUsd,
    });
    countCharge(run.runId, { phase, agent: agent.id, model: p.model }, p.costUsd * 1e6, totalTokens(p.usage));
  }
  run.st.ledger = release(run.st.ledger, key);
  if (parts.length > 0) {
    run.audit.record('budget', {
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

const meterTokens = (u: MeterSummary['usage']): number =>
  u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
