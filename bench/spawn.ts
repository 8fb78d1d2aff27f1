/**
 * `npm run bench:spawn`: how long a teammate request takes to become a running agent process, by the
 * three ways a request is made:
 * - **mcp**: an agent's `request_teammate` tool call, through the team MCP server (bin/team-mcp.mjs, the
 *   process `claude` starts) and the agent's tool socket, as a model makes it;
 * - **cli**: an agent's `orchestrator team request` in its shell (a new CLI process per request);
 * - **client**: a `requestAgent` update from a `@temporalio/client` already connected.
 * A script backend team (so that what is measured is orchestration, not a model) gets the requests in a
 * row, all from the manager with its own capability; each new agent's process writes the wall-clock time
 * it started. Latency = process start − the moment the request was made (same machine clock). Printed as
 * p50 and p99 beside the seed's 2.5 s average (its request directories were polled every 5 s).
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { loadHierarchyPolicy } from '../config/hierarchy';
import { createTeamToolHandler } from '../activities/team-tools/handler';
import {
  serveTeamTools,
  TEAM_AGENT_ENV,
  TEAM_KEY_FILE_ENV,
  TEAM_MCP_SCRIPT,
  TEAM_SOCKET_ENV,
} from '../activities/team-tools/socket';
import { createLogger } from '../src/logger';
import { requestAgentUpdate, type TeamStatus } from '../src/shared/team';
import { nextProof, startTeam, teamStatus, type AgentCredentials } from '../src/teams';
import { benchEnv, median, percentile } from './harness';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 30);
/** A CLI request starts a process: fewer of them keep the run short. */
const CLI_REQUESTS = Number(process.env.BENCH_CLI_REQUESTS ?? Math.min(REQUESTS, 15));
const WARMUP = 2;
/** The seed orchestrator looked for request directories every 5 s: 2.5 s on average. */
const SEED_AVERAGE_MS = 2_500;
const ROOT = path.resolve(import.meta.dirname, '..');

const nowMs = () => performance.timeOrigin + performance.now();

async function until<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    // The worker shares this event loop: a busy poll would slow what it measures. The poll interval does
    // not bias the result, since each process records its own start time.
    await delay(25);
  }
}

const env = await benchEnv();
try {
  const workspace = path.join(env.dir, 'ws');
  // Markers live in the workspace: the one place a sandboxed script agent may write.
  const markers = path.join(workspace, 'markers');
  const stopFile = path.join(workspace, 'stop');
  const total = 3 * WARMUP + 2 * REQUESTS + CLI_REQUESTS;
  const input = await startTeam(env.client, {
    goal: 'spawn benchmark',
    workspace,
    outputsDir: env.config.outputsDir,
    policy: loadHierarchyPolicy(undefined, { maxTeamSize: total + 5 }),
    backend: 'script',
    taskQueue: 'bench',
    // The manager stays up (it is the requester) until the benchmark is over.
    instructions: { manager: `while [ ! -f '${stopFile}' ]; do sleep 0.1; done` },
  });
  fs.mkdirSync(markers, { recursive: true });
  const { runId } = input;
  const handle = env.client.workflow.getHandle(runId);
  await until(
    async () =>
      (await teamStatus(env.client, runId)).agents.find((a) => a.id === 'manager-1')?.state === 'running',
    'the manager',
  );
  const creds: AgentCredentials = {
    agentId: 'manager-1',
    key: fs.readFileSync(path.join(env.config.outputsDir, runId, 'keys', 'manager-1.key'), 'utf8').trim(),
  };

  /** The process start time its marker holds (ms since the epoch). */
  const startedAt = (name: string) =>
    until(() => {
      try {
        const text = fs.readFileSync(path.join(markers, name), 'utf8').trim();
        return text ? Number(text) / 1e6 : undefined;
      } catch {
        return undefined;
      }
    }, `process of ${name}`);
  // `date +%s%N`: the process's own start time, in ns since the epoch.
  const script = (name: string) => `date +%s%N > 'markers/${name}'`;

  /** Runs `n` requests (after warm-up ones) one after another; latencies in ms. */
  async function measure(
    label: string,
    n: number,
    request: (name: string) => Promise<number>,
  ): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < WARMUP + n; i++) {
      const name = `${label}-${i}`;
      const t0 = await request(name);
      const latency = (await startedAt(name)) - t0;
      if (i >= WARMUP) out.push(latency);
    }
    return out;
  }

  // client: the update alone (its proof is computed before the clock starts, as a client holding its
  // chain would).
  const client = await measure('client', REQUESTS, async (name) => {
    const proof = await nextProof(env.client, runId, creds, 'team');
    const t0 = nowMs();
    await handle.executeUpdate(requestAgentUpdate, {
      args: [
        { role: 'software-engineer', name, instructions: script(name), requestedBy: 'manager-1', proof },
      ],
    });
    return t0;
  });

  // mcp: the team MCP server as `claude` starts it, talking to the agent's tool socket.
  const identity = { runId, agentId: creds.agentId, key: creds.key };
  const socket = await serveTeamTools({
    handler: createTeamToolHandler({ client: env.client, identity, logger: createLogger('error') }),
    identity,
  });
  const mcp = new McpClient({ name: 'bench', version: '1.0.0' });
  await mcp.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [TEAM_MCP_SCRIPT],
      env: {
        ...(process.env as Record<string, string>),
        [TEAM_SOCKET_ENV]: socket.path,
        [TEAM_KEY_FILE_ENV]: socket.keyFile!,
        [TEAM_AGENT_ENV]: creds.agentId,
      },
    }),
  );
  let mcpLatencies: number[];
  try {
    mcpLatencies = await measure('mcp', REQUESTS, async (name) => {
      const t0 = nowMs();
      const r = await mcp.callTool({
        name: 'request_teammate',
        arguments: { role: 'software-engineer', name, instructions: script(name) },
      });
      if (r.isError) throw new Error(`request_teammate refused: ${JSON.stringify(r.content)}`);
      return t0;
    });
  } finally {
    await mcp.close();
    await socket.close();
  }

  // cli: `orchestrator team request` as an agent runs it in its shell.
  const cliEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: env.config.temporal.address,
    ORCHESTRATOR_RUN_ID: runId,
    ORCHESTRATOR_AGENT_ID: creds.agentId,
    ORCHESTRATOR_AGENT_KEY: creds.key,
    LOG_LEVEL: 'error',
  };
  const cli = await measure('cli', CLI_REQUESTS, async (name) => {
    const file = path.join(env.dir, `${name}.sh`);
    fs.writeFileSync(file, script(name));
    const t0 = nowMs();
    const r = await execa(
      process.execPath,
      [
        path.join(ROOT, 'bin/orchestrator.js'),
        'team',
        'request',
        '--role',
        'software-engineer',
        '--name',
        name,
        '--instructions-file',
        file,
      ],
      { env: cliEnv, reject: false, stdin: 'ignore' },
    );
    if (r.exitCode !== 0) throw new Error(`orchestrator team request failed: ${r.stderr}`);
    return t0;
  });

  fs.writeFileSync(stopFile, '');
  const final = (await handle.result()) as TeamStatus;
  const spawned = final.agents.filter((a) => /^(client|mcp|cli)-\d+$/.test(a.name));
  if (spawned.length !== total || spawned.some((a) => a.state !== 'completed')) {
    throw new Error(`expected ${total} completed bench agents, got ${spawned.length}`);
  }
  const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
  // A ratio below 1 printed as "0.2x faster" reads as a gain: say which way it goes.
  const versusSeed = (p50: number) =>
    p50 <= SEED_AVERAGE_MS
      ? `${(SEED_AVERAGE_MS / p50).toFixed(1)}x faster than the seed`
      : `${(p50 / SEED_AVERAGE_MS).toFixed(1)}x slower than the seed`;
  console.log('spawn latency: request made → the teammate agent process running (script backend)');
  for (const [label, xs] of [
    ['mcp    (request_teammate tool call)', mcpLatencies],
    ['cli    (orchestrator team request) ', cli],
    ['client (requestAgent update)       ', client],
  ] as const) {
    const p50 = median(xs);
    console.log(
      `  ${label}  n=${String(xs.length).padStart(3)}  p50 ${fmt(p50).padStart(7)}  p99 ${fmt(percentile(xs, 99)).padStart(7)}` +
        `  max ${fmt(Math.max(...xs)).padStart(7)}  → ${versusSeed(p50)}`,
    );
  }
  console.log(
    `baseline: the seed orchestrator polled request directories every 5 s → ${fmt(SEED_AVERAGE_MS)} on average before any process starts`,
  );
} finally {
  await env.close();
}
