/** Which agents run without a child workflow, and when an agent's attempts are over: pure decisions. */
import { describe, expect, it } from 'vitest';
import { agentDone, agentResult, SUMMARY_CAP } from '../../workflows/agent';
import { ZERO_USAGE } from '../../src/shared/run';
import { runsInline } from '../../workflows/script-agent';
import { mayHaveEarlierAttempt } from '../../activities/script';

describe('script agents without a child workflow', () => {
  it('runs a script agent with static routing and a command inline, nothing else', () => {
    expect(runsInline({ backend: 'script', command: ['true'] })).toBe(true);
    expect(runsInline({ backend: 'script', routing: 'static', command: ['sh', '-c', 'x'] })).toBe(true);
    // Model agents keep their workflow: sessions, meters, budget pauses, a status query of their own.
    expect(runsInline({ backend: 'cli', command: ['true'] })).toBe(false);
    expect(runsInline({ backend: 'api' })).toBe(false);
    // A script without a command, or asked for a model routing, fails in agentWorkflow with its reason.
    expect(runsInline({ backend: 'script' })).toBe(false);
    expect(runsInline({ backend: 'script', command: [] })).toBe(false);
    expect(runsInline({ backend: 'script', routing: 'hybrid', command: ['true'] })).toBe(false);
  });
});

describe('agent attempts', () => {
  it('ends on success, on the last attempt, and on a failure that is not the agent’s own', () => {
    expect(agentDone({ ok: true }, 1, 3)).toBe(true);
    expect(agentDone({ ok: false, errorType: 'AgentExited' }, 1, 3)).toBe(false);
    expect(agentDone({ ok: false, errorType: 'AgentExited' }, 3, 3)).toBe(true);
    expect(agentDone({ ok: false, errorType: 'InvalidAgent' }, 1, 3)).toBe(true);
  });
});

describe('an agent’s result', () => {
  const agent = { id: 'dev-1', role: 'developer', backend: 'script' as const };
  const started = '2026-12-02T00:00:00.000Z';
  it('keeps the end of the summary, all attempts’ spend rounded, and the failure’s type only when failed', () => {
    const spent = { usage: { ...ZERO_USAGE, input_tokens: 7 }, costUsd: 0.1 + 0.2 };
    const failed = agentResult(
      agent,
      {
        ok: false,
        summary: 'x'.repeat(SUMMARY_CAP) + 'END',
        usage: ZERO_USAGE,
        costUsd: 0,
        error: 'exit 3',
        errorType: 'AgentExited',
      },
      spent,
      2,
      started,
    );
    expect(failed).toMatchObject({
      agentId: 'dev-1',
      status: 'failed',
      errorType: 'AgentExited',
      attempts: 2,
    });
    expect(failed.summary).toHaveLength(SUMMARY_CAP);
    expect(failed.summary.endsWith('END')).toBe(true);
    expect(failed.costUsd).toBe(0.3);
    expect(failed.usage.input_tokens).toBe(7);
    expect(failed.startedAt).toBe(started);
    const ok = agentResult(
      agent,
      {
        ok: true,
        summary: 'done',
        usage: ZERO_USAGE,
        costUsd: 0,
        errorType: 'AgentExited',
        refusedTools: [],
      },
      spent,
      undefined,
      started,
    );
    expect(ok.status).toBe('completed');
    // A success names no failure type, a single-attempt agent no attempts, an empty refusal list nothing.
    expect(ok).not.toHaveProperty('errorType');
    expect(ok).not.toHaveProperty('attempts');
    expect(ok).not.toHaveProperty('refusedTools');
  });
});

describe('searching the host for an earlier attempt’s processes', () => {
  const first = { attempt: 1, previous: undefined, confined: true, running: 0 };
  it('skips the /proc pass only for a confined first attempt with no earlier lease and none running here', () => {
    expect(mayHaveEarlierAttempt(first)).toBe(false);
    // A retry, an earlier attempt's lease, a turn of the same agent still running in this worker.
    expect(mayHaveEarlierAttempt({ ...first, attempt: 2 })).toBe(true);
    expect(mayHaveEarlierAttempt({ ...first, previous: { host: 'h', leaseAt: 1 } })).toBe(true);
    expect(mayHaveEarlierAttempt({ ...first, running: 1 })).toBe(true);
    // Unconfined, a script's setsid children outlive its group: always searched.
    expect(mayHaveEarlierAttempt({ ...first, confined: false })).toBe(true);
  });
});
