/**
 * Failure classification, argv building and the cost/usage arithmetic of claudeTurn, on the shapes the
 * real CLI prints (messages copied from claude 2.1.330).
 */
import { describe, expect, it } from 'vitest';
import { classifyCliFailure, summarizeRun, type CliFailureFacts } from '../../activities/cli';
import { buildClaudeArgs } from '../../src/claude/args';
import { createStreamState, feedLine, ResultLineSchema, type ResultLine } from '../../src/claude/stream';

const result = (fields: Record<string, unknown>): ResultLine =>
  ResultLineSchema.parse({ type: 'result', subtype: 'success', is_error: true, ...fields });

const apiError = (status: number, type: string, text: string) =>
  result({ api_error_status: status, api_error_type: type, result: `API Error: ${status} ${text}` });

function cls(f: CliFailureFacts) {
  const c = classifyCliFailure(f);
  return { type: c.type, nonRetryable: c.nonRetryable };
}

describe('classifyCliFailure', () => {
  it.each([
    [429, 'rate_limit_error', 'RateLimited', false],
    [500, 'api_error', 'ApiUnavailable', false],
    [502, 'api_error', 'ApiUnavailable', false],
    [529, 'overloaded_error', 'ApiUnavailable', false],
    [408, 'timeout_error', 'ApiUnavailable', false],
    [401, 'authentication_error', 'AuthenticationFailed', true],
    [403, 'permission_error', 'AuthenticationFailed', true],
    [400, 'invalid_request_error', 'InvalidRequest', true],
    [404, 'not_found_error', 'InvalidRequest', true],
  ])('API status %i (%s) → %s', (status, type, expected, nonRetryable) => {
    expect(cls({ exitCode: 1, result: apiError(status, type, 'boom') })).toEqual({
      type: expected,
      nonRetryable,
    });
  });

  it('keeps the server message for an invalid request', () => {
    const c = classifyCliFailure({
      exitCode: 1,
      result: apiError(400, 'invalid_request_error', 'messages: too long'),
    });
    expect(c.message).toContain('messages: too long');
  });

  it('classifies the CLI limits, not retryable', () => {
    expect(
      cls({
        exitCode: 1,
        result: result({ subtype: 'error_max_turns', errors: ['Reached maximum number of turns (1)'] }),
      }),
    ).toEqual({
      type: 'MaxTurnsExceeded',
      nonRetryable: true,
    });
    const budget = classifyCliFailure({
      exitCode: 1,
      result: result({ subtype: 'error_max_budget_usd', errors: ['Reached maximum budget ($0.0001)'] }),
    });
    expect(budget).toMatchObject({ type: 'BudgetExhausted', nonRetryable: true });
    expect(budget.message).toContain('$0.0001');
  });

  it('a kill is retryable, whatever result came before it', () => {
    expect(cls({ exitCode: 143 })).toEqual({ type: 'ProcessKilled', nonRetryable: false });
    expect(cls({ exitCode: null, signal: 'SIGKILL', result: result({ is_error: false }) })).toEqual({
      type: 'ProcessKilled',
      nonRetryable: false,
    });
  });

  it('a missing binary says how to install it or set CLAUDE_PATH', () => {
    const c = classifyCliFailure({ spawnErrorCode: 'ENOENT', claudePath: '/opt/claude' });
    expect(c).toMatchObject({ type: 'ClaudeNotFound', nonRetryable: true });
    expect(c.message).toMatch(/"\/opt\/claude".*npm install -g @anthropic-ai\/claude-code.*CLAUDE_PATH/);
  });

  it('reads startup errors from stderr', () => {
    expect(cls({ exitCode: 1, stderr: "error: unknown option '--bogus-flag'\n" })).toEqual({
      type: 'InvalidInvocation',
      nonRetryable: true,
    });
    expect(
      cls({
        exitCode: 1,
        stderr:
          "error: option '--permission-mode <mode>' argument 'bogus' is invalid. Allowed choices are acceptEdits, auto.\n",
      }),
    ).toEqual({ type: 'InvalidInvocation', nonRetryable: true });
    expect(
      cls({
        exitCode: 1,
        stderr: 'Error: When using --print, --output-format=stream-json requires --verbose\n',
      }).type,
    ).toBe('InvalidInvocation');
    expect(cls({ exitCode: 1, stderr: 'Error: Session ID 2222 is already in use.\n' }).type).toBe(
      'SessionInUse',
    );
  });

  it('recognises a resume of an unknown session (printed as a result and on stderr)', () => {
    const r = result({
      subtype: 'error_during_execution',
      errors: ['No conversation found with session ID: 3333'],
    });
    expect(
      cls({ exitCode: 1, result: r, stderr: 'No conversation found with session ID: 3333\n' }).type,
    ).toBe('SessionNotFound');
  });

  it('treats "Not logged in" as an authentication failure', () => {
    expect(
      cls({
        exitCode: 1,
        result: result({ api_error_status: null, result: 'Not logged in · Please run /login' }),
      }),
    ).toEqual({
      type: 'AuthenticationFailed',
      nonRetryable: true,
    });
  });

  // The agent's own failure: Temporal does not retry it, agentWorkflow counts it against max_attempts.
  it("anything else is a CliError (the agent's own, not retried by Temporal) with the reason", () => {
    const c = classifyCliFailure({
      exitCode: 1,
      result: result({ subtype: 'error_during_execution', errors: ['disk full'] }),
    });
    expect(c).toMatchObject({ type: 'CliError', nonRetryable: true });
    expect(c.message).toContain('disk full');
    const d = classifyCliFailure({ exitCode: 3, stderr: 'Segmentation fault\n' });
    expect(d).toMatchObject({ type: 'CliError', nonRetryable: true });
    expect(d.message).toContain('exited 3');
  });
});

describe('buildClaudeArgs', () => {
  it('starts with --session-id and continues with --resume', () => {
    expect(buildClaudeArgs({ sessionId: 'S', mode: 'new' })).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--session-id',
      'S',
    ]);
    expect(buildClaudeArgs({ sessionId: 'S', mode: 'resume' }).slice(4)).toEqual(['--resume', 'S']);
  });

  it('omits empty options and puts the variadic tool lists last', () => {
    const args = buildClaudeArgs({
      sessionId: 'S',
      mode: 'new',
      allowedTools: [],
      disallowedTools: ['Bash'],
      model: 'haiku',
    });
    expect(args.slice(6)).toEqual(['--model', 'haiku', '--disallowedTools', 'Bash']);
  });
});

describe('summarizeRun (cost and usage of a turn)', () => {
  const run = {
    ok: true,
    durationMs: 5,
    transcriptPath: '/t',
    stderrPath: '/e',
    exitCode: 0,
    sessionMode: 'resume' as const,
  };
  const withResult = (r: Record<string, unknown>) => {
    const s = createStreamState();
    feedLine(s, JSON.stringify({ type: 'result', subtype: 'success', is_error: false, ...r }));
    return s;
  };
  const mu = (inputTokens: number, outputTokens: number) => ({
    m: { inputTokens, outputTokens, cacheReadInputTokens: 0, cacheCreationInputTokens: 0, costUSD: 0 },
  });

  it('charges a resumed turn only the delta of the cumulative session totals', () => {
    const s = withResult({ total_cost_usd: 0.3, modelUsage: mu(300, 30) });
    const sum = summarizeRun(
      s,
      {
        sessionId: 'S',
        previousSessionCostUsd: 0.1,
        previousSessionUsage: { inputTokens: 100, outputTokens: 10, cacheRead: 0, cacheCreation: 0 },
      },
      run,
    );
    expect(sum.totalCostUsd).toBe(0.3);
    expect(sum.costUsd).toBe(0.2); // not 0.19999999999999998
    expect(sum.usage).toEqual({ inputTokens: 200, outputTokens: 20, cacheRead: 0, cacheCreation: 0 });
    expect(sum.sessionUsage).toEqual({ inputTokens: 300, outputTokens: 30, cacheRead: 0, cacheCreation: 0 });
  });

  it('never goes negative, and keeps the previous totals when the run printed none', () => {
    const lower = summarizeRun(
      withResult({ total_cost_usd: 0.05, modelUsage: {} }),
      { sessionId: 'S', previousSessionCostUsd: 0.1 },
      run,
    );
    expect(lower.costUsd).toBe(0);
    expect(lower.totalCostUsd).toBe(0.1);
    const none = summarizeRun(
      createStreamState(),
      { sessionId: 'S', previousSessionCostUsd: 0.1 },
      { ...run, ok: false },
    );
    expect(none).toMatchObject({ costUsd: 0, totalCostUsd: 0.1, costKnown: false, subtype: 'none' });
  });

  it('caps the result text', () => {
    const sum = summarizeRun(
      withResult({ result: 'x'.repeat(10_000) }),
      { sessionId: 'S', previousSessionCostUsd: 0 },
      run,
    );
    expect(sum.resultText.length).toBeLessThanOrEqual(2049);
  });
});
