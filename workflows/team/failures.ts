/**
 * How the team workflows read and make failures: the failure a failed agent's workflow ends with (its
 * result in the details), the result read back from it, the registered type of a failure, the turn
 * summary a failed model turn carries. Pure functions of the failure objects.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';
import { isFailureType, type FailureType } from '../../src/shared/failures';
import type { TeamAgentResult } from './types';

// Read the same way for phase agents: the team modules take them from here with the rest.
export { describe, failureSummary, type FailedTurnSummary, type SessionUsage } from '../failures';

/** Failure type of a model turn stopped by a budget (activities/meter BUDGET_EXCEEDED). */
export const BUDGET_EXCEEDED = 'BudgetExceeded';

/** The failure a failed agent's workflow ends with: its type is the agent's classified failure. */
export function agentFailure(result: TeamAgentResult): ApplicationFailure {
  return ApplicationFailure.create({
    type: result.errorType ?? 'AgentFailed',
    message: `${result.agentId} failed: ${(result.error ?? 'unknown error').slice(0, 500)}`,
    nonRetryable: true,
    details: [result],
  });
}

/** The result a failed agent's workflow carried in its failure (see `agentFailure`), if it is one. */
export function carriedAgentResult(err: unknown): TeamAgentResult | undefined {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const first: unknown = Array.isArray(cause.details) ? cause.details[0] : undefined;
  if (!first || typeof first !== 'object') return undefined;
  const r = first as Partial<TeamAgentResult>;
  return typeof r.agentId === 'string' && r.state === 'failed' && typeof r.completedAt === 'string'
    ? (r as TeamAgentResult)
    : undefined;
}

/** The failure type of a `claude` result that ended a turn unsuccessfully (activities/cli/classify). */
export function cliResultType(subtype: string): FailureType {
  if (subtype === 'error_max_turns') return 'MaxTurnsExceeded';
  if (subtype === 'error_max_budget_usd') return 'BudgetExhausted';
  return 'CliError';
}

/** The registered failure type of an activity's (or child's) failure; `AgentFailed` for anything else. */
export function failureType(err: unknown): FailureType {
  const cause = err instanceof ActivityFailure || err instanceof ChildWorkflowFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? cause.type : undefined;
  return isFailureType(type) ? type : 'AgentFailed';
}

/** The failure of a model turn stopped by a budget (the meter refused its next request), if it is one. */
export function budgetRefusal(err: unknown): ApplicationFailure | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return cause instanceof ApplicationFailure && cause.type === BUDGET_EXCEEDED ? cause : undefined;
}
