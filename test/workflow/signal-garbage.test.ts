/**
 * Every signal a run, a team or a team agent takes survives garbage: anyone who can signal a workflow may
 * send anything (`temporal workflow signal --input`), and a handler that threw on a malformed payload
 * fails its workflow task, which Temporal retries with the same payload forever: a stalled run. Each
 * signal here gets null, numbers, strings, arrays and objects of the wrong shape; afterwards no workflow
 * task has failed, queries answer, and the run, the team and its agents complete as if nothing came.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import {
  agentBudgetLimitsSignal,
  agentBudgetPausedSignal,
  rollbackSignal,
  statusQuery,
} from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { ProjectSpecSchema } from '../../src/shared/spec';
import {
  agentEndedSignal,
  agentProgressSignal,
  deliverMessageSignal,
  messageAgentSignal,
  reportStatusSignal,
  spawnAgentSignal,
  spawnRefusedSignal,
  spoofReportSignal,
  stopAgentSignal,
  stopTeamSignal,
  teamAgentStatusQuery,
  teamHostLostSignal,
  teamHostMovedSignal,
  type TeamStatus,
} from '../../src/shared/team';
import { startRun } from '../../src/runs';
import { startTeam, teamStatus } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
  await t.startWorker();
});
afterAll(async () => t?.close());

/** Payloads of every wrong shape (each signal also gets the near misses of its own schema). */
const GARBAGE: unknown[] = [
  null,
  42,
  'text',
  [],
  [1, 2, 3],
  true,
  {},
  { agentId: { nested: true } },
  { workflowId: 7, from: [], text: {}, reason: { why: 1 }, checkpoint: null },
  Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i])),
];

/** Sends every payload of `payloads` to signal `name` of workflow `workflowId`, one after another. */
async function flood(client: Client, workflowId: string, name: string, payloads: unknown[]): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  for (const p of payloads) await handle.signal(name, p);
}

/** The workflow task failures in a workflow's history (none, when every handler kept its payload out). */
async function failedTasks(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    .map((e) => e.workflowTaskFailedEventAttributes?.failure?.message ?? '?');
}

/**
 * A one-phase run whose script agent holds until the file `go` exists, started and seen running; the
 * file is where the sandboxed agent can see it (the sandbox's writable root, as the harness sets it).
 */
async function heldRun(name: string) {
  const workspace = tempDir(`orch-${name}-run-`);
  const root = (process.env.ORCHESTRATOR_SANDBOX_WRITABLE ?? '').split(path.delimiter)[0];
  const go = path.join(fs.mkdtempSync(path.join(root || tempDir(`orch-${name}-`), 'go-')), 'go');
  const spec = ProjectSpecSchema.parse({
    project: { name },
    phases: [
      {
        name: 'build',
        agents: [
          {
            role: 'developer',
            backend: 'script',
            command: ['sh', '-c', `while [ ! -f ${go} ]; do sleep 0.2; done; echo built > out.txt`],
          },
        ],
        artifacts: [],
      },
    ],
  });
  const { runId } = await startRun(t.client, {
    spec,
    workspace,
    outputsDir: t.config.outputsDir,
    taskQueue: t.taskQueue,
  });
  const handle = t.client.workflow.getHandle(runId);
  await waitFor(
    async () => (await handle.query(statusQuery)).agents?.some((a) => a.state === 'running'),
    'the agent running',
  );
  return { runId, handle, workspace, go };
}

describe('garbage on every signal', () => {
  it('a project run: rollback and agentBudgetPaused garbage leave it running, then it completes', async () => {
    const { runId, handle, workspace, go } = await heldRun('garbage');
    const paused = { workflowId: 'x', phase: 'build', agent: 'developer', reason: 'r', level: 'run' };
    await flood(t.client, runId, agentBudgetPausedSignal.name, [
      ...GARBAGE,
      { ...paused, level: 'galaxy', unit: 'usd' },
      { ...paused, workflowId: '', unit: 'tokens' },
    ]);
    await flood(t.client, runId, rollbackSignal.name, GARBAGE);

    const status: RunStatus = await handle.query(statusQuery);
    expect(status.state).toBe('running');
    // Refused rollbacks show in status (by design); no budget pause came of the garbage.
    expect(status.pausedReason ?? '').toMatch(/^last refused request: invalid rollback request/);
    expect(status.pausedReason).not.toMatch(/budget/i);
    expect(status.agents?.map((a) => a.state)).toEqual(['running']);
    fs.writeFileSync(go, '');
    const result = (await handle.result()) as { state: string };
    expect(result.state).toBe('completed');
    expect(fs.readFileSync(path.join(workspace, 'out.txt'), 'utf8')).toBe('built\n');
    expect(await failedTasks(t.client, runId)).toEqual([]);
  }, 300_000);

  it('a payload nested 100,000 deep (JSON no client could serialize, sent as raw bytes) leaves the worker and the run alive', async () => {
    const { runId, handle, go } = await heldRun('deep');
    const depth = 100_000;
    const deep = Buffer.from(
      `{"checkpoint":${'['.repeat(depth)}${']'.repeat(depth)},"x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
    );
    for (const signalName of [rollbackSignal.name, agentBudgetPausedSignal.name, 'unknownSignal']) {
      await t.client.workflowService.signalWorkflowExecution({
        namespace: t.client.options.namespace,
        workflowExecution: { workflowId: runId },
        signalName,
        input: { payloads: [{ metadata: { encoding: Buffer.from('json/plain') }, data: deep }] },
        identity: 'deep-test',
      });
    }
    await new Promise((r) => setTimeout(r, 2_000));
    const status: RunStatus = await handle.query(statusQuery);
    expect(status.state).toBe('running');
    fs.writeFileSync(go, '');
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    expect(await failedTasks(t.client, runId)).toEqual([]);
  }, 300_000);

  it('a team and its agent: garbage on each of their signals changes nothing, then the team completes', async () => {
    const workspace = tempDir('orch-garbage-team-');
    const hold = 'while [ ! -e release ]; do sleep 0.2; done';
    const { runId } = await startTeam(t.client, {
      goal: 'Withstand garbage',
      workspace,
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(undefined, {}),
      backend: 'script',
      taskQueue: t.taskQueue,
      instructions: { manager: hold, architect: hold },
    });
    const before = await waitFor(async () => {
      const s = await teamStatus(t.client, runId);
      return s.agents.length === 2 && s.agents.every((a) => a.state === 'running') && s;
    }, 'the two agents running');
    const manager = before.agents.find((a) => a.id === 'manager-1')!;

    for (const signal of [
      spawnAgentSignal,
      spawnRefusedSignal,
      spoofReportSignal,
      messageAgentSignal,
      agentProgressSignal,
      agentEndedSignal,
      agentBudgetPausedSignal,
      teamHostLostSignal,
    ]) {
      await flood(t.client, runId, signal.name, GARBAGE);
    }
    // Near misses: the right agent with a wrong state or cost, an end that is not one.
    await flood(t.client, runId, agentProgressSignal.name, [
      { agentId: 'manager-1', state: 'exploded' },
      { agentId: 'manager-1', costUsd: 'free' },
      { agentId: 'manager-1', costUsd: -5, tasks: { completed: -1, total: 0 } },
    ]);
    await flood(t.client, runId, agentEndedSignal.name, [
      { agentId: 'manager-1', state: 'completed' },
      { agentId: 'manager-1', state: 'running', costUsd: 0, turns: 0, tasks: { completed: 0, total: 0 } },
    ]);
    // stopTeam refuses what it cannot read (a null stop is a stop: not sent here).
    await flood(t.client, runId, stopTeamSignal.name, [42, 'now', [], { reason: { why: 1 } }]);

    for (const signal of [
      agentBudgetLimitsSignal,
      deliverMessageSignal,
      reportStatusSignal,
      teamHostMovedSignal,
    ]) {
      await flood(t.client, manager.workflowId, signal.name, [
        ...GARBAGE,
        { run: { microUsd: -1 } },
        { agent: { tokens: 'many' } },
      ]);
    }
    // A stop with no payload stops the agent (`temporal workflow signal --name stopAgent`); these do not.
    await flood(t.client, manager.workflowId, stopAgentSignal.name, [42, 'stop', [], { reason: { why: 1 } }]);

    const agent = await t.client.workflow.getHandle(manager.workflowId).query(teamAgentStatusQuery);
    expect(agent.state).toBe('running');
    expect(agent.note).toBeUndefined();
    const during = await teamStatus(t.client, runId);
    expect(during.state).toBe('running');
    expect(during.agents.map((a) => [a.id, a.state, a.costUsd])).toEqual(
      before.agents.map((a) => [a.id, 'running', a.costUsd]),
    );

    fs.writeFileSync(path.join(workspace, 'release'), '');
    const final = (await t.client.workflow.getHandle(runId).result()) as TeamStatus;
    expect(final.state).toBe('completed');
    expect(final.agents.map((a) => [a.id, a.state])).toEqual([
      ['manager-1', 'completed'],
      ['architect-1', 'completed'],
    ]);
    for (const id of [runId, ...final.agents.map((a) => a.workflowId)])
      expect(await failedTasks(t.client, id), id).toEqual([]);
  }, 300_000);
});
