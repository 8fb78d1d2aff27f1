/**
 * What one attempt of an agent came to (a turn outcome), whether the agent is done after it, and the
 * failure a failed agent's workflow ends with. Pure functions of results and failure objects, and the
 * one log line between attempts.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, log } from '@temporalio/workflow';
import { round6 } from '../../src/shared/budget';
import { countsAgainstAgent, isFailureType } from '../../src/shared/failures';
import { type AgentResult, type Usage, ZERO_USAGE } from '../../src/shared/run';
import { describe, type FailedTurnSummary } from '../failures';
import { SUMMARY_CAP, type AgentWorkflowInput } from './input';

export { describe, failureSummary } from '../failures';

export interface TurnOutcome {
  ok: boolean;
  summary: string;
  outputRef?: string;
  usage: Usage;
  costUsd: number;
  models?: AgentResult['models'];
  sessionId?: string;
  error?: string;
  /** The failure type (src/shared/failures), when the outcome is a failure. */
  errorType?: string;
  refusedTools?: AgentResult['refusedTools'];
}

/** The outcome of an attempt that ended in a failure (an activity's, or the agent's own). */
export function failedOutcome(err: unknown): TurnOutcome {
  return {
    ok: false,
    summary: '',
    usage: ZERO_USAGE,
    costUsd: 0,
    error: describe(err),
    errorType: failureType(err),
  };
}

/**
 * The result of an agent that is done: its last attempt's outcome, what all its attempts spent, and how
 * many it made (when it may make more than one).
 */
export function agentResult(
  agent: AgentWorkflowInput['agent'],
  o: TurnOutcome,
  spent: { usage: Usage; costUsd: number },
  attempts: number | undefined,
  startedAt: string,
): AgentResult {
  return {
    agentId: agent.id,
    role: agent.role,
    backend: agent.backend,
    status: o.ok ? 'completed' : 'failed',
    summary: o.summary.slice(-SUMMARY_CAP),
    outputRef: o.outputRef,
    usage: spent.usage,
    costUsd: round6(spent.costUsd),
    models: o.models,
    sessionId: o.sessionId,
    error: o.error,
    ...(o.ok ? {} : { errorType: o.errorType }),
    ...(attempts !== undefined ? { attempts } : {}),
    ...(o.refusedTools?.length ? { refusedTools: o.refusedTools } : {}),
    startedAt,
    completedAt: new Date().toISOString(),
  };
}

/** Whether an agent is done after this attempt: it succeeded, it has no attempts left, or its failure
 * is not its own (input, config, budget: another attempt would fail the same way). */
export function agentDone(
  outcome: Pick<TurnOutcome, 'ok' | 'errorType'>,
  attempt: number,
  maxAttempts: number,
): boolean {
  return outcome.ok || attempt >= maxAttempts || !countsAgainstAgent(outcome.errorType);
}

/** The warning between an agent's attempts (the workflow's `log`: not repeated on replay). */
export function logAttemptFailed(
  agentId: string,
  outcome: Pick<TurnOutcome, 'errorType' | 'error'>,
  attempt: number,
  maxAttempts: number,
): void {
  log.warn('agent attempt failed; trying again', {
    agentId,
    attempt,
    maxAttempts,
    errorType: outcome.errorType,
    error: outcome.error?.slice(0, 300),
  });
}

/**
 * Patch id: an agent that fails for good ends as a failed workflow, its classified failure the cause and
 * its result in the failure's details (issue #13). Before it, the workflow completed with `status:
 * failed` inside its result.
 */
export const AGENT_HONEST_OUTCOMES_PATCH = 'agent-honest-outcomes';

/** The failure a failed agent's workflow ends with: typed by the agent's classified failure. */
export function agentFailedError(result: AgentResult): ApplicationFailure {
  return ApplicationFailure.create({
    type: isFailureType(result.errorType) ? result.errorType : 'AgentFailed',
    message: `agent ${result.agentId} failed: ${(result.error ?? 'unknown error').slice(0, 500)}`,
    nonRetryable: true,
    details: [result],
  });
}

/** The result a failed agent's workflow carried in its failure (see `agentFailedError`), if any. */
export function failedAgentResult(err: unknown): AgentResult | undefined {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const first: unknown = Array.isArray(cause.details) ? cause.details[0] : undefined;
  if (!first || typeof first !== 'object') return undefined;
  const r = first as Partial<AgentResult>;
  return typeof r.agentId === 'string' && r.status === 'failed' && typeof r.startedAt === 'string'
    ? (r as AgentResult)
    : undefined;
}

/** A failed turn's usage (its details) as a result counts usage. */
export function toUsage(u: FailedTurnSummary['usage']): Usage {
  if (!u) return { ...ZERO_USAGE };
  return {
    input_tokens: u.inputTokens,
    output_tokens: u.outputTokens,
    cache_read_input_tokens: u.cacheRead,
    cache_creation_input_tokens: u.cacheCreation,
  };
}

/** The ApplicationFailure type behind an activity failure; undefined for timeouts and plain errors. */
export function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}
