/**
 * The meter part of a model turn: the limits its requests are admitted under (raised by the
 * `budgetLimits` signal), and what a budget refusal does: with `on_budget_exceeded: pause`, the agent
 * tells the run and waits in place, same session, for new limits.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  agentBudgetLimitsSignal,
  agentBudgetPausedSignal,
  MeterLimitsMessageSchema,
  type MeterLimitsMessage,
} from '../../src/shared/messages';
import { signalInput } from '../signal-input';
import type { AgentWorkflowInput } from './input';
import { failureSummary, type TurnOutcome } from './outcome';

/** Failure type of a model turn stopped by a budget (activities/meter BUDGET_EXCEEDED). */
const BUDGET_EXCEEDED = 'BudgetExceeded';

/** The meter part of a model turn's input, and what to do when a budget refuses a request. */
export interface Metering {
  meter: () => { id: string; phase: string; agent: string; limits: MeterLimitsMessage } | undefined;
  /** After a budget refusal: true once new limits arrived (run the turn again), false to fail the agent. */
  waitForRaise: (err: unknown) => Promise<boolean>;
}

/** Adds a turn's usage and cost to the agent's spend. */
export type Account = (o: Pick<TurnOutcome, 'usage' | 'costUsd'>) => void;

/**
 * The agent's metering: the limits it starts with, replaced by each valid `budgetLimits` signal (its
 * handler is set here), and the pause on a budget refusal.
 */
export function agentMetering(input: AgentWorkflowInput): Metering {
  const { agent } = input;
  let limits: MeterLimitsMessage = input.meter?.limits ?? {};
  let limitsVersion = 0;
  setHandler(agentBudgetLimitsSignal, (raw) => {
    const l = signalInput('budgetLimits', MeterLimitsMessageSchema, raw, { agentId: agent.id });
    if (!l) return;
    limits = l;
    limitsVersion += 1;
  });
  return {
    meter: () =>
      input.meter ? { id: input.meter.id, phase: input.phase, agent: agent.id, limits } : undefined,
    async waitForRaise(err) {
      const parent = workflowInfo().parent;
      const cause = err instanceof ActivityFailure ? err.cause : undefined;
      if (
        !input.meter ||
        input.onBudgetExceeded !== 'pause' ||
        !parent ||
        !(cause instanceof ApplicationFailure) ||
        cause.type !== BUDGET_EXCEEDED
      ) {
        return false;
      }
      const refusal = failureSummary(err)?.budgetRefusal;
      const seen = limitsVersion;
      // The run pauses and names the limit; this agent keeps its session and conversation and waits.
      await getExternalWorkflowHandle(parent.workflowId).signal(agentBudgetPausedSignal, {
        workflowId: workflowInfo().workflowId,
        phase: input.phase,
        agent: agent.id,
        reason: cause.message,
        level: refusal?.level === 'run' || refusal?.level === 'phase' ? refusal.level : 'agent',
        unit: refusal?.unit === 'tokens' ? 'tokens' : 'usd',
      });
      await condition(() => limitsVersion > seen);
      return true;
    },
  };
}
