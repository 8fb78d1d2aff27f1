/**
 * Agent runtime scenarios on the real dev server with the real `claude` CLI and the real SDK, against the
 * local Messages-API server (the only stand-in: the model). Prompts carry directives the server executes
 * through Claude Code's own tools (`@write`, `@bash`) or uses to shape a turn (`@sleep`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { agentStatusQuery, phaseResultsQuery } from '../../src/shared/messages';
import { rollbackRun, startRun } from '../../src/runs';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import { waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv, spawnWorkerProcess } from '../harness/temporal';
import { withKillHeartbeat } from '../harness/specs';
import { DEFAULT_AGENT_ATTEMPTS } from '../../src/shared/failures';

function cliPhaseSpec(
  prompt: string,
  opts: { backend?: 'cli' | 'api'; artifacts?: string[]; withPlanning?: boolean } = {},
): ProjectSpec {
  const phases = [];
  if (opts.withPlanning) {
    phases.push({
      name: 'planning',
      agents: [{ role: 'architect', backend: 'script', command: ['sh', '-c', 'echo "# plan" > plan.md'] }],
      artifacts: ['plan.md'],
    });
  }
  phases.push({
    name: 'development',
    agents: [{ role: 'developer', backend: opts.backend ?? 'cli', model: 'claude-haiku-4-5', prompt }],
    artifacts: opts.artifacts ?? [],
  });
  return ProjectSpecSchema.parse({
    project: { name: 'agents' },
    phases: phases.map((p) => ({ ...p, artifacts: p.artifacts.map((pattern) => ({ pattern })) })),
  });
}

/** Sums what the model server actually served (successful answers only). */
function served(server: ModelServer, since = 0) {
  const ok = server.requests.slice(since).filter((r) => r.endpoint === 'messages' && r.status === 200);
  return {
    costUsd: ok.reduce((n, r) => n + (r.costUsd ?? 0), 0),
    input: ok.reduce((n, r) => n + (r.usage?.input_tokens ?? 0), 0),
    output: ok.reduce((n, r) => n + (r.usage?.output_tokens ?? 0), 0),
  };
}

/** Processes that carry a claude session's marker (the cli activity tags every process of a turn). */
function processesOfSession(sessionId: string): number[] {
  const pids: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(sessionId)) pids.push(Number(pid));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

describe('agent runtime on the real dev server', () => {
  let t: TestEnv;
  let server: ModelServer;
  let agentHome: string;
  beforeAll(async () => {
    server = await startModelServer();
    agentHome = tempDir('orch-home-');
    t = await createTestEnv();
    await t.startWorker({
      deps: { config: { ...t.config, anthropic: { baseURL: server.url, apiKey: 'test-key' }, agentHome } },
    });
  });
  afterAll(async () => {
    await t.close();
    await server.close();
  });

  it('a cli agent writes a file through Claude Code and its cost and usage match the server, priced', async () => {
    const since = server.requests.length;
    const ws = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: cliPhaseSpec('Create the greeting file.\n@write hello.txt hello from claude', {
        artifacts: ['hello.txt'],
      }),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    expect(fs.readFileSync(path.join(ws, 'hello.txt'), 'utf8')).toBe('hello from claude');
    const [result] = await handle.query(phaseResultsQuery);
    const s = served(server, since);
    expect(s.costUsd).toBeGreaterThan(0);
    expect(result!.costUsd).toBeCloseTo(s.costUsd, 6);
    expect(
      result!.usage.input_tokens +
        result!.usage.cache_read_input_tokens +
        result!.usage.cache_creation_input_tokens,
    ).toBeGreaterThanOrEqual(s.input);
    expect(result!.usage.output_tokens).toBe(s.output);
    const agent = result!.agents[0]!;
    expect(agent.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(agent.outputRef).toBe(
      path.join(t.config.outputsDir, input.runId, 'agents', 'development-developer.jsonl'),
    );
    expect(fs.readFileSync(agent.outputRef!, 'utf8')).toContain('"type":"result"');
  });

  it('an api agent runs a tool loop (each tool call an activity) and is priced on the responding model', async () => {
    const since = server.requests.length;
    const ws = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: cliPhaseSpec('Write the notes.\n@write notes/api.txt written by the api backend', {
        backend: 'api',
        artifacts: ['notes/api.txt'],
      }),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    expect(fs.readFileSync(path.join(ws, 'notes/api.txt'), 'utf8')).toBe('written by the api backend');
    const [result] = await handle.query(phaseResultsQuery);
    expect(result!.costUsd).toBeCloseTo(served(server, since).costUsd, 6);
    expect(Object.keys(result!.agents[0]!.models ?? {})).toEqual(['claude-haiku-4-5']);
  });

  it('hybrid routing: when the model backend fails, the script runs instead', async () => {
    const ws = tempDir('orch-ws-');
    const spec = ProjectSpecSchema.parse({
      project: { name: 'hybrid' },
      phases: [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'cli',
              routing: 'hybrid',
              model: 'claude-haiku-4-5',
              prompt: '@fail 401',
              command: ['sh', '-c', 'echo fallback > done.txt'],
            },
          ],
          artifacts: [{ pattern: 'done.txt' }],
        },
      ],
    });
    const input = await startRun(t.client, {
      spec,
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    expect(fs.readFileSync(path.join(ws, 'done.txt'), 'utf8')).toBe('fallback\n');
    const [result] = await handle.query(phaseResultsQuery);
    expect(result!.agents[0]!.status).toBe('completed');
  });

  it('two 500s then a 200: the turn succeeds after Temporal retries', async () => {
    const since = server.requests.length;
    server.injectFaults({ status: 500, message: 'boom 1' }, { status: 500, message: 'boom 2' });
    const input = await startRun(t.client, {
      spec: cliPhaseSpec('@write retried.txt ok', { artifacts: ['retried.txt'] }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    expect(((await t.client.workflow.getHandle(input.runId).result()) as { state: string }).state).toBe(
      'completed',
    );
    const statuses = server.requests
      .slice(since)
      .filter((r) => r.endpoint === 'messages')
      .map((r) => r.status);
    expect(statuses.slice(0, 3)).toEqual([500, 500, 200]);
  });

  it("a 400 is never retried by Temporal, counts against the agent's attempts, and names the server message", async () => {
    const since = server.requests.length;
    // Several, because the CLI itself retries a 400 once with fewer beta features.
    // `@fail 400` makes the server answer this conversation with a 400 every time (the CLI itself retries
    // a 400 once with fewer beta features, so a single injected fault would not reach the activity).
    const input = await startRun(t.client, {
      spec: cliPhaseSpec('@fail 400\n@write never.txt no'),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /InvalidRequest: .*rehearsal: @fail 400/,
    );
    // Temporal never retries it (every claudeTurn start is attempt 1): a 400 is the agent's own failure,
    // counted by agentWorkflow against the agent's max_attempts (src/shared/failures.ts, the retry rule).
    const child = await t.client.workflow.getHandle(`${input.runId}/development/developer`).fetchHistory();
    const starts = (child.events ?? []).filter((e) => e.activityTaskStartedEventAttributes);
    expect(starts).toHaveLength(DEFAULT_AGENT_ATTEMPTS);
    for (const s of starts) expect(s.activityTaskStartedEventAttributes!.attempt).toBe(1);
    expect(server.requests.slice(since).filter((r) => r.status === 200)).toHaveLength(0);
  });

  it('a 429 with retry-after: the next attempt waits at least that long', async () => {
    const since = server.requests.length;
    server.injectFaults({ status: 429, message: 'slow down', retryAfterSeconds: 3 });
    const input = await startRun(t.client, {
      spec: cliPhaseSpec('@write later.txt ok', { artifacts: ['later.txt'] }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    expect(((await t.client.workflow.getHandle(input.runId).result()) as { state: string }).state).toBe(
      'completed',
    );
    const reqs = server.requests.slice(since).filter((r) => r.endpoint === 'messages');
    expect(reqs[0]!.status).toBe(429);
    expect(reqs[1]!.receivedAt - reqs[0]!.receivedAt).toBeGreaterThanOrEqual(3000);
  });

  it('a rollback during a running cli agent leaves no claude process behind', async () => {
    const input = await startRun(t.client, {
      spec: cliPhaseSpec('@sleep 60000\n@write slow.txt never', { withPlanning: true }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const child = t.client.workflow.getHandle(`${input.runId}/development/developer`);
    const sessionId = await waitFor(
      async () => (await child.query(agentStatusQuery)).sessionId,
      'agent session',
    );
    await waitFor(
      () =>
        server.requests.some((r) => r.firstUserText.includes('@sleep 60000') && r.status === 0) &&
        processesOfSession(sessionId).length > 0,
      'claude running',
    );
    await rollbackRun(t.client, input.runId, 'CP1', 'test: cancel the agent');
    expect(processesOfSession(sessionId)).toEqual([]);
    // The rerun starts a new session; cancelling the run ends it too.
    const again = await waitFor(async () => {
      const s = (await child.query(agentStatusQuery)).sessionId;
      return s && s !== sessionId ? s : undefined;
    }, 'rerun session');
    await waitFor(() => processesOfSession(again).length > 0, 'rerun claude running');
    await t.client.workflow.getHandle(input.runId).cancel();
    await waitFor(() => processesOfSession(again).length === 0, 'no claude after cancel', 30_000);
  });
});

describe('crash during a claude turn', () => {
  let t: TestEnv;
  let server: ModelServer;
  beforeAll(async () => {
    server = await startModelServer();
    t = await createTestEnv();
  });
  afterAll(async () => {
    await t.close();
    await server.close();
  });

  it('a SIGKILLed worker: the retry resumes the same session and the run counts its cost once', async () => {
    const home = tempDir('orch-home-');
    const ws = tempDir('orch-ws-');
    const w1 = spawnWorkerProcess(t, {
      ORCHESTRATOR_AGENT_HOME: home,
      ANTHROPIC_BASE_URL: server.url,
      ANTHROPIC_API_KEY: 'test-key',
    });
    const input = await startRun(t.client, {
      // Its killed turn is retried ~10 s after its last beat instead of 30 s (test/harness/specs).
      spec: withKillHeartbeat(
        cliPhaseSpec('@sleep 4000\n@write crash.txt survived', { artifacts: ['crash.txt'] }),
      ),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(
      () => server.requests.some((r) => r.firstUserText.includes('crash.txt')),
      'first turn in flight',
      90_000,
    );
    w1.kill('SIGKILL');
    await new Promise((r) => w1.once('exit', r));
    const w2 = spawnWorkerProcess(t, {
      ORCHESTRATOR_AGENT_HOME: home,
      ANTHROPIC_BASE_URL: server.url,
      ANTHROPIC_API_KEY: 'test-key',
    });
    try {
      const handle = t.client.workflow.getHandle(input.runId);
      expect(((await handle.result()) as { state: string }).state).toBe('completed');
      const [result] = await handle.query(phaseResultsQuery);
      const agent = result!.agents[0]!;
      // Every claude run of this agent, killed or retried, reported the same session.
      const transcript = fs
        .readFileSync(agent.outputRef!, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type?: string; subtype?: string; session_id?: string });
      const inits = transcript.filter((l) => l.type === 'system' && l.subtype === 'init');
      expect(inits.length).toBeGreaterThanOrEqual(4);
      expect(new Set(inits.map((l) => l.session_id))).toEqual(new Set([agent.sessionId]));
      // The session is counted once: the run's cost equals everything the server served, priced.
      expect(result!.costUsd).toBeCloseTo(served(server).costUsd, 6);
      expect(fs.readFileSync(path.join(ws, 'crash.txt'), 'utf8')).toBe('survived');
    } finally {
      w2.kill('SIGTERM');
      await new Promise((r) => w2.once('exit', r));
    }
  });
});
