/**
 * Prometheus metrics (issue #15 point 4): a worker process started with ORCHESTRATOR_METRICS_PORT serves
 * the Temporal runtime's metrics and ours from one `/metrics` endpoint. After a metered api agent ran (and
 * paused once on its budget) against the local model server, the run's money counter equals what the
 * server itself says it served, to the micro-dollar, and the pause and spawns are counted.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { queryStatus, raiseBudget, startRun } from '../../src/runs';
import type { RunStatus } from '../../src/shared/run';
import { waitFor } from '../harness/gates';
import { servedSince } from '../harness/money';
import { modelSpec } from '../harness/specs';
import {
  createTestEnv,
  spawnWorkerProcess,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

/** A port free right now on loopback (the exporter binds it a moment later). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Samples of one metric whose labels include all of `labels`, as numbers. */
function samples(text: string, name: string, labels: Record<string, string>): number[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
}

describe('metrics endpoint', () => {
  let t: TestEnv;
  let server: ModelServer;
  let worker: ChildProcess | undefined;
  let port: number;
  beforeAll(async () => {
    server = await startModelServer();
    t = await createTestEnv();
    port = await freePort();
    worker = spawnWorkerProcess(t, {
      ANTHROPIC_BASE_URL: server.url,
      ANTHROPIC_API_KEY: 'test-key',
      ORCHESTRATOR_AGENT_HOME: tempDir('orch-home-'),
      ORCHESTRATOR_METRICS_PORT: String(port),
    });
    await waitUntilPolling(t, worker.pid!);
  });
  afterAll(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const w = worker;
      w.kill('SIGTERM');
      await new Promise((r) => w.once('exit', r));
    }
    await t?.close();
    await server?.close();
  });

  it('serves runtime metrics and the run’s cost, tokens, spawns and budget pause', async () => {
    const since = server.requests.length;
    const input = await startRun(t.client, {
      spec: modelSpec('metrics', [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'api',
              budget_usd: 0.01,
              prompt: 'Write two files.\n@cost 2000\n@write a.txt one\n@write b.txt two',
            },
          ],
        },
      ]),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(
      async () => {
        const s: RunStatus = await queryStatus(t.client, input.runId);
        return s.state === 'paused' ? s : undefined;
      },
      'paused by the agent budget',
      150_000,
    );
    await raiseBudget(t.client, input.runId, {
      scope: { level: 'agent', phase: 'development', agent: 'developer' },
      usd: 1,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const served = servedSince(server, since);
    expect(served.microUsd).toBeGreaterThan(0);

    const run = { run: input.runId };
    // Metrics leave the workflow through a sink flushed with the workflow task; poll until they show.
    const text = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        expect(res.status).toBe(200);
        const body = await res.text();
        const cost = samples(body, 'orchestrator_cost_micro_usd', run).reduce((a, b) => a + b, 0);
        return cost === served.microUsd ? body : undefined;
      },
      'the run’s cost on /metrics equal to what the model server served',
      30_000,
    );
    // The runtime's own metrics come out of the same endpoint.
    expect(text).toMatch(/^temporal_workflow_completed\{/m);
    expect(text).toMatch(/^temporal_request\{/m);
    const dev = { ...run, phase: 'development', agent: 'developer' };
    expect(samples(text, 'orchestrator_cost_micro_usd', dev).every((v) => v > 0)).toBe(true);
    expect(samples(text, 'orchestrator_cost_micro_usd', dev).length).toBeGreaterThan(0);
    expect(samples(text, 'orchestrator_tokens', dev).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(samples(text, 'orchestrator_budget_pauses', dev)).toEqual([1]);
    expect(samples(text, 'orchestrator_agent_spawns', dev).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });
});
