/**
 * `npm run bench:spawn`: how long a teammate request takes to become a running agent process. A script
 * backend team (so that what is measured is orchestration, not a model) gets 50 `requestAgent` updates in
 * a row; each new agent's process writes the wall-clock time it started. Latency = process start − the
 * moment the update was sent (same machine clock). Printed as p50 and p99 beside the seed's 5-second
 * polling of request directories.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { loadHierarchyPolicy } from '../config/hierarchy';
import { requestAgentUpdate, type TeamStatus } from '../src/shared/team';
import { startTeam, teamStatus } from '../src/teams';
import { benchEnv, median, percentile } from './harness';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50);
const WARMUP = 3;
/** The seed orchestrator looked for request directories every 5 s. */
const SEED_POLL_MS = 5_000;

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
  const markers = path.join(env.dir, 'markers');
  fs.mkdirSync(markers, { recursive: true });
  const stopFile = path.join(env.dir, 'stop');
  const input = await startTeam(env.client, {
    goal: 'spawn benchmark',
    workspace: path.join(env.dir, 'ws'),
    outputsDir: env.config.outputsDir,
    policy: loadHierarchyPolicy(undefined, { maxTeamSize: REQUESTS + WARMUP + 5 }),
    backend: 'script',
    taskQueue: 'bench',
    // The manager stays up (it is the requester) until the benchmark is over.
    instructions: { manager: `while [ ! -f '${stopFile}' ]; do sleep 0.1; done` },
  });
  const handle = env.client.workflow.getHandle(input.runId);
  await until(
    async () =>
      (await teamStatus(env.client, input.runId)).agents.find((a) => a.id === 'manager-1')?.state ===
      'running',
    'the manager',
  );

  const latencies: number[] = [];
  const updates: number[] = [];
  for (let i = 0; i < WARMUP + REQUESTS; i++) {
    const name = `bench-${i}`;
    const marker = path.join(markers, name);
    const t0 = nowMs();
    const r = await handle.executeUpdate(requestAgentUpdate, {
      args: [
        {
          role: 'software-engineer',
          name,
          // `date +%s%N`: the process's own start time, in ns since the epoch.
          instructions: `date +%s%N > '${marker}'`,
          requestedBy: 'manager-1',
        },
      ],
    });
    const tUpdate = nowMs() - t0;
    const started = await until(() => {
      try {
        const text = fs.readFileSync(marker, 'utf8').trim();
        return text ? Number(text) / 1e6 : undefined;
      } catch {
        return undefined;
      }
    }, `process of ${r.agentId}`);
    if (i < WARMUP) continue;
    latencies.push(started - t0);
    updates.push(tUpdate);
  }

  fs.writeFileSync(stopFile, '');
  const final = (await handle.result()) as TeamStatus;
  const spawned = final.agents.filter((a) => a.name.startsWith('bench-'));
  if (spawned.length !== WARMUP + REQUESTS || spawned.some((a) => a.state !== 'completed')) {
    throw new Error(`expected ${WARMUP + REQUESTS} completed bench agents, got ${spawned.length}`);
  }
  const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
  console.log(
    `spawn latency: requestAgent update sent → agent process running (${REQUESTS} requests, script backend)`,
  );
  console.log(
    `  p50 ${fmt(median(latencies))}   p99 ${fmt(percentile(latencies, 99))}   max ${fmt(Math.max(...latencies))}`,
  );
  console.log(
    `  update round trip (until the agent's workflow has started): p50 ${fmt(median(updates))}, p99 ${fmt(percentile(updates, 99))}`,
  );
  console.log(
    `seed orchestrator: request directories polled every ${SEED_POLL_MS / 1000} s → ${fmt(SEED_POLL_MS / 2)} on average, up to ${fmt(SEED_POLL_MS)}, before any process starts`,
  );
  console.log(
    `  p50 speed-up over the seed's average: ${(SEED_POLL_MS / 2 / median(latencies)).toFixed(1)}x`,
  );
} finally {
  await env.close();
}
