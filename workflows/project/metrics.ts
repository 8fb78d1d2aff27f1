/**
 * The run's own Prometheus metrics, emitted through the workflow metric meter so they leave the worker by
 * the runtime's endpoint next to the SDK's. The meter is skipped during replay and emits no commands, so
 * these calls neither double count nor change history. Counters are integers: money is in micro-dollars.
 */
import { metricMeter } from '@temporalio/workflow';

/**
 * Counters are made where they are used, not when this module loads: the meter exists only inside a
 * workflow, and unit tests import the decision modules that call these functions outside one. Making a
 * counter is cheap (a name and its tags travel with each value).
 */
const counter = {
  costMicroUsd: () =>
    metricMeter.createCounter(
      'orchestrator_cost_micro_usd',
      'uUSD',
      'Money charged to run ledgers, by run, phase, agent and model',
    ),
  tokens: () =>
    metricMeter.createCounter(
      'orchestrator_tokens',
      'tokens',
      'Tokens charged to run ledgers, by run, phase, agent and model',
    ),
  spawns: () => metricMeter.createCounter('orchestrator_agent_spawns', '', 'Agent children started'),
  rollbacks: () => metricMeter.createCounter('orchestrator_rollbacks', '', 'Workspace rollbacks'),
  gateResults: () =>
    metricMeter.createCounter('orchestrator_gate_results', '', 'Gate evaluations by outcome'),
  budgetPauses: () => metricMeter.createCounter('orchestrator_budget_pauses', '', 'Runs paused by a budget'),
};

/** One ledger charge (the spend on one model) as counters. */
export function countCharge(
  run: string,
  at: { phase: string; agent: string; model: string },
  microUsd: number,
  tokenCount: number,
): void {
  const tags = { run, phase: at.phase, agent: at.agent, model: at.model };
  // Counters only go up; a negative or fractional delta would make the SDK throw inside the workflow.
  if (microUsd > 0) counter.costMicroUsd().add(Math.round(microUsd), tags);
  if (tokenCount > 0) counter.tokens().add(Math.round(tokenCount), tags);
}

/** An agent child is about to start. */
export function countSpawn(run: string, phase: string, agent: string): void {
  counter.spawns().add(1, { run, phase, agent });
}

/** The workspace was rolled back (`source`: gate or operator). */
export function countRollback(run: string, source: string): void {
  counter.rollbacks().add(1, { run, source });
}

/** One gate's result. */
export function countGate(run: string, phase: string, gate: string, passed: boolean): void {
  counter.gateResults().add(1, { run, phase, gate, outcome: passed ? 'passed' : 'failed' });
}

/** The run paused on an exhausted budget. */
export function countBudgetPause(run: string, phase: string, agent: string): void {
  counter.budgetPauses().add(1, { run, phase, agent });
}
