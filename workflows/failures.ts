/**
 * Reading the failures a workflow catches, for phase agents (./agent) and team agents (./team) alike:
 * one line describing a failure, and the turn summary a failed model turn carries in its details (what
 * the turn had cost, the session's totals, the budget refusal). Pure functions of the failure objects.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';

/** A session's usage so far, as the claude turn reports it. */
export interface SessionUsage {
  inputTokens: number;
  outputTokens: number;
  cacheRead: number;
  cacheCreation: number;
}

/** The summary a failed model turn carries in its details (activities/cli, activities/api). */
export interface FailedTurnSummary {
  /** What this turn cost before it failed. */
  costUsd?: number;
  usage?: SessionUsage;
  /** The session's totals after it. */
  totalCostUsd?: number;
  sessionUsage?: SessionUsage;
  transcriptPath?: string;
  /** The limit that refused a request (activities/meter). */
  budgetRefusal?: { level?: string; unit?: string };
  deliveredSeq?: number;
}

/** The summary in a failed turn's details, if it has one. */
export function failureSummary(err: unknown): FailedTurnSummary | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const details = (cause as { details?: unknown[] } | undefined)?.details;
  const first = Array.isArray(details) ? details[0] : undefined;
  return first && typeof first === 'object' ? first : undefined;
}

/** One line for a failure: `Type: message` of its cause (an activity's or a child workflow's). */
export function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure || err instanceof ChildWorkflowFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  if (cause instanceof Error) return cause.message;
  return String(err);
}
