/**
 * Honest outcomes (issue #13): a failed agent is a failed child workflow with its classified failure as
 * the cause; a team whose agents all failed fails, naming them; `on_agent_failure: stop` stops the rest;
 * a project phase's failed agent is a failed child too, and the run still reads its result. Real dev
 * server, real worker, script agents that fail.
 */
import { execa } from 'execa';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { startTeam, teamStatus } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { createTestEnv, env, tempDir, type TestEnv } from '../harness/temporal';

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
  await t.startWorker();
});
afterAll(async () => t?.close());

/** How the workflow ended: its failure (a WorkflowFailedError), or undefined when it completed. */
async function failureOf(workflowId: string): Promise<WorkflowFailedError | undefined> {
  return t.client.workflow
    .getHandle(workflowId)
    .result()
    .then(
      () => undefined,
      (e: unknown) => {
        if (e instanceof WorkflowFailedError) return e;
        throw e;
      },
    );
}

/** `temporal workflow list` (the real CLI) of the failed workflows whose ids start with `prefix`. */
async function listedFailed(prefix: string): Promise<string[]> {
  const r = await execa(
    env('ORCH_TEST_TEMPORAL_CLI'),
    [
      'workflow',
      'list',
      '--address',
      t.config.temporal.address,
      '--query',
      `ExecutionStatus = 'Failed' AND WorkflowId STARTS_WITH '${prefix}'`,
      '--output',
      'json',
    ],
    { reject: false },
  );
  expect(r.exitCode, r.stderr).toBe(0);
  const rows = r.stdout.trim() ? (JSON.parse(r.stdout) as { execution: { workflowId: string } }[]) : [];
  return rows.map((w) => w.execution.workflowId).sort();
}

/** The failure type a failed workflow names as its cause. */
async function causeType(workflowId: string): Promise<string | undefined> {
  const failure = await failureOf(workflowId);
  return failure?.cause instanceof ApplicationFailure ? (failure.cause.type ?? undefined) : undefined;
}

describe('honest outcomes', () => {
  it('a team whose agents all fail ends failed naming them; the agents are Failed workflows', async () => {
    const input = await startTeam(t.client, {
      goal: 'Fail honestly',
      workspace: tempDir('orch-team-ws-'),
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(),
      backend: 'script',
      taskQueue: t.taskQueue,
      engineers: 1,
      instructions: {
        manager: 'echo "manager gives up" >&2; exit 3',
        architect: 'exit 4',
        'software-engineer': 'exit 5',
      },
    });
    const failure = await failureOf(input.runId);
    expect(failure, 'the team workflow must fail').toBeDefined();
    const cause = failure!.cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('TeamFailed');
    expect(cause!.message).toMatch(/^team failed: all 3 agents failed: /);
    for (const id of ['manager-1', 'architect-1', 'software-engineer-1'])
      expect(cause!.message).toContain(`${id} (AgentExited`);

    // The status still answers, and says failed, with each agent's classified failure.
    const s = await teamStatus(t.client, input.runId);
    expect(s.state).toBe('failed');
    expect(s.agents.map((a) => [a.id, a.state, a.errorType])).toEqual([
      ['manager-1', 'failed', 'AgentExited'],
      ['architect-1', 'failed', 'AgentExited'],
      ['software-engineer-1', 'failed', 'AgentExited'],
    ]);
    expect(s.agents[0]!.error).toMatch(/script exited with code 3/);
    // The failed agents were archived as such: their result rode in the failure.
    expect(s.agents.every((a) => a.archivedTo?.endsWith(`${a.id}-failed`))).toBe(true);
    expect(s.audit.some((e) => e.details['event'] === 'team_failed')).toBe(true);

    // Each agent is a Failed workflow whose cause is its classified failure.
    const agents = s.agents.map((a) => a.workflowId).sort();
    const listed = await waitFor(async () => {
      const l = await listedFailed(`${input.runId}/`);
      return l.length === agents.length && l;
    }, 'the failed agents in `temporal workflow list`');
    expect(listed).toEqual(agents);
    for (const id of agents) expect(await causeType(id)).toBe('AgentExited');
    expect(await listedFailed(input.runId)).toContain(input.runId);
  });

  it('a team with one failing agent and one that completes completes (policy continue)', async () => {
    const input = await startTeam(t.client, {
      goal: 'Partly fail',
      workspace: tempDir('orch-team-ws-'),
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(),
      backend: 'script',
      taskQueue: t.taskQueue,
      instructions: { manager: 'exit 3', architect: 'echo ok' },
    });
    expect(await failureOf(input.runId)).toBeUndefined();
    const s = await teamStatus(t.client, input.runId);
    expect(s.state).toBe('completed');
    expect(s.agents.map((a) => [a.id, a.state])).toEqual([
      ['manager-1', 'failed'],
      ['architect-1', 'completed'],
    ]);
    expect(await causeType(s.agents[0]!.workflowId)).toBe('AgentExited');
  });

  it('on_agent_failure: stop — a failed agent stops the running ones and the team fails naming it', async () => {
    const workspace = tempDir('orch-team-ws-');
    const input = await startTeam(t.client, {
      goal: 'Stop on failure',
      workspace,
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(undefined, { onAgentFailure: 'stop' }),
      backend: 'script',
      taskQueue: t.taskQueue,
      // The manager would run for ten minutes; the architect fails once the manager is up.
      instructions: {
        manager: 'touch manager.up; sleep 600',
        architect: 'while [ ! -e manager.up ]; do sleep 0.1; done; exit 7',
      },
    });
    const failure = await failureOf(input.runId);
    expect((failure?.cause as ApplicationFailure | undefined)?.type).toBe('TeamFailed');
    expect(failure?.cause?.message).toMatch(
      /^team failed: agent architect-1 \(AgentExited: script exited with code 7.*\) failed and the policy \(on_agent_failure: stop\) stopped the team$/,
    );
    const s = await teamStatus(t.client, input.runId);
    expect(s.state).toBe('failed');
    expect(s.agents.map((a) => [a.id, a.state])).toEqual([
      ['manager-1', 'stopped'],
      ['architect-1', 'failed'],
    ]);
  });

  // A script agent's turn is an activity of the run (patch script-agent-activity), not a child workflow:
  // the run itself is the Failed workflow, and its failure carries the agent's.
  it("a project phase's failed script agent fails the run, listed Failed, with the agent's error", async () => {
    const input = await startRun(t.client, {
      spec: ProjectSpecSchema.parse({
        project: { name: 'honest phase' },
        phases: [
          {
            name: 'development',
            agents: [
              { role: 'developer', backend: 'script', command: ['sh', '-c', 'exit 3'], max_attempts: 1 },
            ],
          },
        ],
      }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const failure = await failureOf(input.runId);
    expect(String(failure?.cause?.message)).toMatch(/script exited with code 3/);
    const listed = await waitFor(async () => {
      const l = await listedFailed(input.runId);
      return l.length === 1 && l;
    }, 'the failed run in `temporal workflow list`');
    expect(listed).toEqual([input.runId]);
  });
});
