/** Which agents run without a child workflow, and when an agent's attempts are over: pure decisions. */
import { describe, expect, it } from 'vitest';
import { agentDone } from '../../workflows/agent';
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
