/**
 * Exact money for team agents ended mid-turn (issue #9), with the real `claude` CLI against the local
 * model server on the real dev server: `team stop` with agents in the middle of a model request, and
 * `team task done` ending an agent whose turn goes on (the grace period). Each agent's charge equals what
 * the server served to it (requests are told apart by the agent id in the persona), and their sum equals
 * the server's own tally.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { teamAgentWorkflowId, type TeamStatus } from '../../src/shared/team';
import { startTeam, stopTeam } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { modelWorkerEnv, tallyMicroUsd } from '../harness/money';
import { KILL_TEST_HEARTBEAT_S, scheduledHeartbeatTimeouts } from '../harness/specs';
import { createTestEnv, spawnWorkerProcess, tempDir, type TestEnv } from '../harness/temporal';

const policy = loadHierarchyPolicy(undefined, { agent: { completionGraceS: 2 } });
const killPolicy = loadHierarchyPolicy(undefined, {
  agent: { completionGraceS: 2, turnHeartbeatTimeoutS: KILL_TEST_HEARTBEAT_S },
});

/** Micro-dollars `server` served to one team agent's requests since index `since` (persona names it). */
function servedTo(server: ModelServer, agentId: string, since: number): number {
  return server.requests
    .slice(since)
    .filter(
      (r) =>
        r.endpoint === 'messages' &&
        r.status === 200 &&
        r.usage &&
        r.system.includes(`(agent id ${agentId})`),
    )
    .reduce((s, r) => s + r.microUsd!, 0);
}

/** Each agent's charge equals what was served to it; together they equal the server's tally. */
function expectChargedAsServed(server: ModelServer, final: TeamStatus, since: number, tallied: number): void {
  let sum = 0;
  for (const a of final.agents) {
    const charged = Math.round(a.costUsd * 1e6);
    expect(charged, a.id).toBe(servedTo(server, a.id, since));
    sum += charged;
  }
  expect(sum).toBe(tallied);
}

describe('team agents ended mid-turn are charged what they were served', () => {
  let t: TestEnv;
  let server: ModelServer;
  beforeAll(async () => {
    server = await startModelServer();
    t = await createTestEnv();
    await t.startWorker({
      deps: {
        config: {
          ...t.config,
          anthropic: { baseURL: server.url, apiKey: 'test-key' },
          agentHome: tempDir('orch-team-home-'),
        },
      },
    });
  });
  afterAll(async () => {
    await t.close();
    await server.close();
  });

  /** A request of `agentId` waiting at the server for its (long) answer, after something was served. */
  const inFlight = (agentId: string, since: number) =>
    servedTo(server, agentId, since) > 0 &&
    server.requests
      .slice(since)
      .some((r) => r.status === 0 && r.system.includes(`(agent id ${agentId})`) && r.maxTokens! > 1);

  it('team stop with every agent in the middle of a model request', async () => {
    const since = server.requests.length;
    const before = await tallyMicroUsd(server);
    const input = await startTeam(t.client, {
      goal: 'Stopped mid-turn',
      workspace: tempDir('orch-team-ws-'),
      outputsDir: t.config.outputsDir,
      policy,
      taskQueue: t.taskQueue,
      instructions: {
        manager: 'Coordinate.\n@cost 800\n@write m.txt manager\n@sleep 120000\n@write m2.txt late',
        architect: 'Design.\n@cost 800\n@write a.txt architect\n@sleep 120000\n@write a2.txt late',
      },
    });
    await waitFor(
      () => inFlight('manager-1', since) && inFlight('architect-1', since),
      'both agents waiting for a model answer',
      150_000,
    );
    await stopTeam(t.client, input.runId, 'test: stop mid-turn');
    const final = (await t.client.workflow.getHandle(input.runId).result()) as TeamStatus;
    expect(final.agents.map((a) => [a.id, a.state]).sort()).toEqual([
      ['architect-1', 'stopped'],
      ['manager-1', 'stopped'],
    ]);
    for (const a of final.agents) expect(a.costUsd).toBeGreaterThan(0);
    expectChargedAsServed(server, final, since, (await tallyMicroUsd(server)) - before);
  });

  it('team task done ends an agent whose turn goes on: charged what it was served', async () => {
    const since = server.requests.length;
    const before = await tallyMicroUsd(server);
    const input = await startTeam(t.client, {
      goal: 'Done mid-turn',
      workspace: tempDir('orch-team-ws-'),
      outputsDir: t.config.outputsDir,
      policy,
      taskQueue: t.taskQueue,
      instructions: {
        manager: 'Coordinate.\n@cost 500\n@bash orchestrator team task done --all',
        // After its last task it keeps the model busy: the grace period ends it mid-request.
        architect:
          'Design.\n@cost 800\n@write a.txt architect\n@bash orchestrator team task done --all\n@sleep 120000\n@say late',
      },
    });
    const final = (await t.client.workflow.getHandle(input.runId).result()) as TeamStatus;
    expect(final.state).toBe('completed');
    expect(final.agents.map((a) => [a.id, a.state]).sort()).toEqual([
      ['architect-1', 'completed'],
      ['manager-1', 'completed'],
    ]);
    // The architect was ended while its last request waited at the server: that one was never served.
    expect(
      server.requests
        .slice(since)
        .some((r) => r.system.includes('(agent id architect-1)') && r.status === 499),
    ).toBe(true);
    for (const a of final.agents) expect(a.costUsd).toBeGreaterThan(0);
    expectChargedAsServed(server, final, since, (await tallyMicroUsd(server)) - before);
  });
});

describe('a team agent whose worker is SIGKILLed mid-turn', () => {
  let t: TestEnv;
  let server: ModelServer;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    server = await startModelServer();
    t = await createTestEnv();
  });
  afterAll(async () => {
    for (const w of workers) {
      if (w.exitCode !== null || w.signalCode !== null) continue;
      const exited = new Promise((r) => w.once('exit', r));
      w.kill('SIGKILL');
      await exited;
    }
    await t.close();
    await server.close();
  });

  it('is charged everything it was served, by the dead attempt and by the retry', async () => {
    const home = tempDir('orch-team-home-');
    const worker = () => {
      const w = spawnWorkerProcess(t, modelWorkerEnv(server, home));
      workers.push(w);
      return w;
    };
    const w1 = worker();
    const input = await startTeam(t.client, {
      goal: 'Killed mid-turn',
      workspace: tempDir('orch-team-ws-'),
      outputsDir: t.config.outputsDir,
      // Its killed turn is retried ~10 s after its last beat instead of 30 s (test/harness/specs).
      policy: killPolicy,
      taskQueue: t.taskQueue,
      instructions: {
        manager:
          'Coordinate.\n@cost 800\n@write m.txt manager\n@sleep 6000\n@cost 800\n@write m2.txt after\n@bash orchestrator team task done --all',
        architect: 'Design.\n@bash orchestrator team task done --all',
      },
    });
    await waitFor(
      () =>
        servedTo(server, 'manager-1', 0) > 0 &&
        server.requests.some(
          (r) => r.status === 0 && r.system.includes('(agent id manager-1)') && r.maxTokens! > 1,
        ),
      'the manager waiting for a model answer after one was served',
      150_000,
    );
    const exited = new Promise((r) => w1.once('exit', r));
    w1.kill('SIGKILL');
    await exited;
    const servedAtKill = servedTo(server, 'manager-1', 0);
    worker();
    const final = (await t.client.workflow.getHandle(input.runId).result()) as TeamStatus;
    expect(final.state).toBe('completed');
    expect(servedTo(server, 'manager-1', 0)).toBeGreaterThan(servedAtKill);
    expectChargedAsServed(server, final, 0, await tallyMicroUsd(server));
    // Every turn of the killed agent was scheduled with the policy's heartbeat timeout.
    const turns = scheduledHeartbeatTimeouts(
      await t.client.workflow.getHandle(teamAgentWorkflowId(input.runId, 'manager-1')).fetchHistory(),
      'claudeTurn',
    );
    expect(turns.length).toBeGreaterThan(0);
    expect(new Set(turns)).toEqual(new Set([KILL_TEST_HEARTBEAT_S * 1000]));
  }, 240_000);
});
