/**
 * Maps Anthropic SDK errors to Temporal failures. The SDK's own retries are off (`maxRetries: 0`): Temporal's
 * retry policy owns retrying, so the failure type and `nextRetryDelay` decide what happens next.
 */
import { APIConnectionError, APIError, AnthropicError } from '@anthropic-ai/sdk';
import { ApplicationFailure } from '@temporalio/activity';
import { isRetryable } from '../../src/shared/failures';

/** Failure types of the api backend; callers list the non-retryable ones in `nonRetryableErrorTypes`. */
export const ApiFailureType = {
  /** 429: retryable, after the server's `retry-after`. */
  RateLimited: 'RateLimited',
  /** 5xx, 529 overloaded, connection errors, streams cut short: retryable. */
  ApiUnavailable: 'ApiUnavailable',
  /** 400 and other 4xx: the request is wrong, retrying cannot help. */
  InvalidRequest: 'InvalidRequest',
  /** 401/403, or no credentials. */
  AuthenticationFailed: 'AuthenticationFailed',
  /** 404 for the model, or a response model without a known price. */
  UnknownModel: 'UnknownModel',
  /** No stream event for the hang limit, or the turn outlived `timeout_s`. */
  AgentHung: 'AgentHung',
} as const;
export type ApiFailureType = (typeof ApiFailureType)[keyof typeof ApiFailureType];

/** Types that must not be retried, from the one registry (src/shared/failures). */
export const NON_RETRYABLE_API_FAILURES: ApiFailureType[] = Object.values(ApiFailureType).filter(
  (t) => !isRetryable(t),
);

/** The delay a `retry-after` (seconds or HTTP date) or `retry-after-ms` header asks for, in ms. */
export function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers?.get('retry-after');
  if (!ra) return undefined;
  const seconds = Number(ra);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function failure(
  type: ApiFailureType,
  message: string,
  nonRetryable: boolean,
  details: Record<string, unknown>,
  cause: Error | undefined,
  nextRetryDelay?: number,
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable,
    details: [details],
    cause,
    ...(nextRetryDelay !== undefined ? { nextRetryDelay } : {}),
  });
}

// `instanceof` on the generic class narrows to APIError<any, …>; the guard pins the declared defaults.
const isApiError = (e: unknown): e is APIError => e instanceof APIError;

/** Classifies an error thrown by the Anthropic SDK (or while streaming) as an {@link ApplicationFailure}. */
export function classifyAnthropicError(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const cause = err instanceof Error ? err : undefined;

  if (err instanceof APIConnectionError) {
    return failure(
      ApiFailureType.ApiUnavailable,
      `Anthropic API unreachable: ${err.message}`,
      false,
      {},
      cause,
    );
  }
  if (isApiError(err)) {
    const apiErr = err;
    const { status, headers } = apiErr;
    const errorType = apiErr.type ?? undefined;
    const serverMessage = apiErr.apiMessage ?? apiErr.message;
    const details = { status, errorType, requestId: apiErr.requestID ?? undefined };
    const msg = `Anthropic API ${status ?? 'stream'} ${errorType ?? 'error'}: ${serverMessage}`;
    if (status === 429 || (status === undefined && errorType === 'rate_limit_error')) {
      return failure(ApiFailureType.RateLimited, msg, false, details, cause, retryAfterMs(headers));
    }
    if (status === 401 || status === 403)
      return failure(ApiFailureType.AuthenticationFailed, msg, true, details, cause);
    if (status === 404) return failure(ApiFailureType.UnknownModel, msg, true, details, cause);
    if (status === 408 || status === 409 || (status !== undefined && status >= 500)) {
      return failure(ApiFailureType.ApiUnavailable, msg, false, details, cause, retryAfterMs(headers));
    }
    if (status !== undefined) return failure(ApiFailureType.InvalidRequest, msg, true, details, cause);
    // No status: an `error` event inside a 200 stream (e.g. overloaded_error mid-answer).
    if (errorType === 'invalid_request_error')
      return failure(ApiFailureType.InvalidRequest, msg, true, details, cause);
    return failure(ApiFailureType.ApiUnavailable, msg, false, details, cause);
  }
  if (err instanceof AnthropicError && /api.?key|auth/i.test(err.message)) {
    return failure(ApiFailureType.AuthenticationFailed, err.message, true, {}, cause);
  }
  // Anything else (a stream that ended early, a socket reset surfacing as a plain Error) is worth another try.
  const message = err instanceof Error ? err.message : String(err);
  return failure(ApiFailureType.ApiUnavailable, `Anthropic API call failed: ${message}`, false, {}, cause);
}
