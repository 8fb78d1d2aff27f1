/**
 * Maps how a `claude` run ended onto an ApplicationFailure type, and whether Temporal may retry it.
 * The CLI runs with CLAUDE_CODE_MAX_RETRIES=1 (one retry that honours retry-after), so every transient
 * API error that outlasts it surfaces here and Temporal's
 * retry policy (with its backoff) owns the retry.
 */
import type { ResultLine } from '../../src/claude/stream';
import { isRetryable } from '../../src/shared/failures';

/** Every failure type a `claudeTurn` can raise; workflows match on these strings. */
export const CliFailureType = {
  RateLimited: 'RateLimited',
  ApiUnavailable: 'ApiUnavailable',
  ProcessKilled: 'ProcessKilled',
  AuthenticationFailed: 'AuthenticationFailed',
  InvalidRequest: 'InvalidRequest',
  MaxTurnsExceeded: 'MaxTurnsExceeded',
  BudgetExhausted: 'BudgetExhausted',
  ClaudeNotFound: 'ClaudeNotFound',
  InvalidInvocation: 'InvalidInvocation',
  /** `--session-id` named a session that exists already. */
  SessionInUse: 'SessionInUse',
  /** `--resume` named a session without a transcript. */
  SessionNotFound: 'SessionNotFound',
  StructuredOutputFailed: 'StructuredOutputFailed',
  /** Anything else (e.g. `error_during_execution`): the agent's own failure, its next attempt resumes the session. */
  CliError: 'CliError',
  /** No progress for the hang limit, or the run outlived `timeout_s`: ended and retried as a hang. */
  AgentHung: 'AgentHung',
} as const;
export type CliFailureType = (typeof CliFailureType)[keyof typeof CliFailureType];

/** Types Temporal must not retry, from the one registry (src/shared/failures). */
export const NON_RETRYABLE_CLI_FAILURES: readonly CliFailureType[] = Object.values(CliFailureType).filter(
  (t) => !isRetryable(t),
);

/** What is known about a finished (or never started) CLI process. */
export interface CliFailureFacts {
  exitCode?: number | null;
  signal?: string | null;
  /** `error.code` of a spawn failure, e.g. ENOENT when the binary is missing. */
  spawnErrorCode?: string;
  /** The last `result` line, when stdout had one. */
  result?: ResultLine;
  stderr?: string;
  claudePath?: string;
}

export interface CliFailureClass {
  type: CliFailureType;
  message: string;
  nonRetryable: boolean;
}

const MESSAGE_CHARS = 500;

function clip(s: string): string {
  const t = s.trim();
  return t.length > MESSAGE_CHARS ? `${t.slice(0, MESSAGE_CHARS)}…` : t;
}

function make(type: CliFailureType, message: string): CliFailureClass {
  return { type, message: clip(message), nonRetryable: NON_RETRYABLE_CLI_FAILURES.includes(type) };
}

/** The most telling line of stderr: the last line that looks like an error, else the last line. */
function stderrReason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  // lib is ES2022, so no Array#findLast.
  const telling = lines.filter((l) => /error|invalid|unknown|not found|in use|requires/i.test(l));
  return telling.at(-1) ?? lines.at(-1) ?? '';
}

const AUTH_TEXT = /not logged in|please run \/login|invalid api key|authentication|x-api-key/i;
const INVOCATION_TEXT =
  /unknown option|unknown command|too many arguments|argument '.*' is invalid|allowed choices|requires --verbose|must be a valid uuid|missing required argument/i;

function fromApiStatus(status: number, errorType: string | null | undefined, text: string): CliFailureClass {
  if (status === 429) return make('RateLimited', `rate limited by the API (429): ${text}`);
  if (
    status === 401 ||
    status === 403 ||
    errorType === 'authentication_error' ||
    errorType === 'permission_error'
  ) {
    return make('AuthenticationFailed', `API refused the credentials (${status}): ${text}`);
  }
  if (status >= 500 || status === 408 || status === 409 || errorType === 'overloaded_error') {
    return make('ApiUnavailable', `API unavailable (${status}): ${text}`);
  }
  return make('InvalidRequest', `API rejected the request (${status}): ${text}`);
}

/**
 * Classifies a failed run. Order matters: a missing binary, then a kill (a killed run's earlier `result`
 * lines say nothing about why it stopped), then the final `result` line, then stderr (startup errors
 * print no result).
 */
export function classifyCliFailure(f: CliFailureFacts): CliFailureClass {
  const stderr = f.stderr ?? '';
  if (f.spawnErrorCode === 'ENOENT' || f.spawnErrorCode === 'EACCES') {
    const what = f.spawnErrorCode === 'ENOENT' ? 'not found' : 'not executable';
    return make(
      'ClaudeNotFound',
      `claude CLI ${what} at "${f.claudePath ?? 'claude'}": install it with \`npm install -g @anthropic-ai/claude-code\` ` +
        'or set CLAUDE_PATH to the binary (e.g. node_modules/.bin/claude)',
    );
  }
  if (f.spawnErrorCode) return make('CliError', `could not start claude (${f.spawnErrorCode})`);

  if (f.signal || f.exitCode === 143 || f.exitCode === 137) {
    return make('ProcessKilled', `claude was killed (${f.signal ?? `exit ${f.exitCode}`})`);
  }

  const r = f.result;
  if (r?.is_error) {
    const text = r.result ?? r.errors?.join('; ') ?? r.subtype;
    switch (r.subtype) {
      case 'error_max_turns':
        return make('MaxTurnsExceeded', `turn limit reached: ${text}`);
      case 'error_max_budget_usd':
        return make('BudgetExhausted', `budget limit reached: ${text}`);
      case 'error_max_structured_output_retries':
        return make('StructuredOutputFailed', text);
      default:
        break;
    }
    if (typeof r.api_error_status === 'number')
      return fromApiStatus(r.api_error_status, r.api_error_type, text);
    if (/no conversation found/i.test(text)) return make('SessionNotFound', text);
    if (/already in use/i.test(text)) return make('SessionInUse', text);
    if (AUTH_TEXT.test(text)) return make('AuthenticationFailed', text);
    return make('CliError', `claude reported an error (${r.subtype}): ${text}`);
  }

  const reason = stderrReason(stderr);
  if (/no conversation found/i.test(stderr)) return make('SessionNotFound', reason);
  if (/already in use/i.test(stderr)) return make('SessionInUse', reason);
  if (INVOCATION_TEXT.test(stderr))
    return make('InvalidInvocation', `claude rejected its arguments: ${reason}`);
  if (AUTH_TEXT.test(stderr)) return make('AuthenticationFailed', reason);
  if (r && !r.is_error) {
    return make(
      'CliError',
      `claude exited ${f.exitCode ?? '?'} after a successful result${reason ? `: ${reason}` : ''}`,
    );
  }
  return make(
    'CliError',
    `claude exited ${f.exitCode ?? '?'} without a result${reason ? `: ${reason}` : ''}`,
  );
}
