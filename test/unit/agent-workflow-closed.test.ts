/**
 * Activity `agentWorkflowClosed`, the check behind a believed `agentEnded` (workflows/team/ends): closed
 * as soon as the server says the agent's workflow is not running (or is gone), not closed when it still
 * runs after the wait; it asks a few times rather than once, since a real end closes a moment after.
 */
import { DefaultLogger } from '@temporalio/worker';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createTeamActivities } from '../../activities/team';
import { createLogger } from '../../src/logger';

const quiet = new DefaultLogger('ERROR', () => undefined);
const acts = createTeamActivities({ logger: createLogger('silent') });
const agentWorkflowClosed = (input: { workflowId: string; waitMs: number }) =>
  acts.agentWorkflowClosed(input);

/** A client whose describe answers the statuses in turn (the last one from then on), counting calls. */
function describing(statuses: Array<string | Error>) {
  let calls = 0;
  const client = {
    // The worker runs each activity inside this (its cancellation reaches the client's calls).
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => R): R => fn(),
    workflow: {
      getHandle: () => ({
        describe: () => {
          const s = statuses[Math.min(calls++, statuses.length - 1)]!;
          return s instanceof Error ? Promise.reject(s) : Promise.resolve({ status: { name: s } });
        },
      }),
    },
  } as unknown as Client;
  return { client, calls: () => calls };
}

const run = (client: Client, waitMs: number) =>
  new MockActivityEnvironment(undefined, { logger: quiet, client }).run(agentWorkflowClosed, {
    workflowId: 'team-1/agent/manager-1',
    waitMs,
  });

describe('agentWorkflowClosed', () => {
  it('is closed once the workflow stops running, asking again meanwhile', async () => {
    const d = describing(['RUNNING', 'RUNNING', 'COMPLETED']);
    expect(await run(d.client, 5_000)).toEqual({ closed: true });
    expect(d.calls()).toBe(3);
  });

  it('is closed for a workflow the server no longer has', async () => {
    const d = describing([new WorkflowNotFoundError('gone', 'team-1/agent/manager-1', undefined)]);
    expect(await run(d.client, 5_000)).toEqual({ closed: true });
  });

  it('is not closed when the workflow still runs after the wait', async () => {
    const d = describing(['RUNNING']);
    const started = Date.now();
    expect(await run(d.client, 300)).toEqual({ closed: false });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(d.calls()).toBeGreaterThan(1);
  });

  it('passes other server errors on (Temporal retries the activity)', async () => {
    const d = describing([new Error('unavailable')]);
    await expect(run(d.client, 1_000)).rejects.toThrow('unavailable');
  });

  it('refuses a malformed input, naming the field', async () => {
    const d = describing(['RUNNING']);
    await expect(
      new MockActivityEnvironment(undefined, { logger: quiet, client: d.client }).run(agentWorkflowClosed, {
        workflowId: '',
        waitMs: -1,
      }),
    ).rejects.toThrow(/agentWorkflowClosed input: workflowId: .*; waitMs/);
  });
});
