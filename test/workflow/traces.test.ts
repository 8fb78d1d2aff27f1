/**
 * OpenTelemetry traces (issue #15 point 4): a worker process started with OTEL_EXPORTER_OTLP_ENDPOINT
 * sends OTLP/HTTP JSON to a stand-in collector on 127.0.0.1 (a tiny HTTP server here that decodes what
 * it receives). After a run with an api agent against the local model server, the collector holds the
 * run's workflow span, a span for its development phase under it, and one model-call span per request
 * the model server itself says it served, each nested under that phase, with the run, agent, model and
 * tokens on it.
 */
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { startRun } from '../../src/runs';
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

/** One span as the collector decoded it (OTLP JSON: ids in hex, attributes as typed values). */
interface Span {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, string | number | boolean>;
  service: string;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttr {
  key: string;
  value: OtlpValue;
}
interface OtlpBody {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttr[] };
    scopeSpans?: {
      spans?: {
        name: string;
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        attributes?: OtlpAttr[];
      }[];
    }[];
  }[];
}

function value(v: OtlpValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return '';
}

function attrs(list: OtlpAttr[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, value(a.value)]));
}

/** A stand-in OTLP/HTTP collector: every span posted to /v1/traces, decoded, in arrival order. */
async function startCollector(): Promise<{ url: string; spans: Span[]; close(): Promise<void> }> {
  const spans: Span[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      // The exporter must speak JSON (OTLP/HTTP's JSON encoding): anything else fails the test loudly.
      expect(req.headers['content-type']).toMatch(/application\/json/);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpBody;
      for (const rs of body.resourceSpans ?? []) {
        const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              name: s.name,
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              attributes: attrs(s.attributes),
              service,
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Whether `span` descends from `ancestor` through the spans received. */
function descendsFrom(span: Span, ancestor: Span, all: Span[]): boolean {
  const byId = new Map(all.map((s) => [s.spanId, s]));
  let at: Span | undefined = span;
  for (let hops = 0; at && hops < 50; hops++) {
    if (at.parentSpanId === ancestor.spanId) return true;
    at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined;
  }
  return false;
}

describe('OpenTelemetry traces', () => {
  let t: TestEnv;
  let server: ModelServer;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let worker: ChildProcess | undefined;
  beforeAll(async () => {
    server = await startModelServer();
    collector = await startCollector();
    t = await createTestEnv();
    worker = spawnWorkerProcess(t, {
      ANTHROPIC_BASE_URL: server.url,
      ANTHROPIC_API_KEY: 'test-key',
      ORCHESTRATOR_AGENT_HOME: tempDir('orch-home-'),
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_SERVICE_NAME: 'orchestrator-traces-test',
    });
    // The first traced worker bundles the traced workflows (seconds to a minute on a loaded machine).
    await waitUntilPolling(t, worker.pid!, 300_000);
  }, 330_000);
  afterAll(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const w = worker;
      w.kill('SIGTERM');
      await new Promise((r) => w.once('exit', r));
    }
    await t?.close();
    await server?.close();
    await collector?.close();
  });

  it('exports spans for the run, its phase and each agent model call, joined in one trace', async () => {
    const since = server.requests.length;
    const input = await startRun(t.client, {
      spec: modelSpec('traces', [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'api',
              prompt: 'Write two files.\n@write a.txt one\n@write b.txt two',
            },
          ],
        },
      ]),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const served = servedSince(server, since);
    expect(served.requests).toBeGreaterThan(0);

    const ofRun = (s: Span) => s.attributes['orchestrator.run'] === input.runId;
    const modelCalls = (all: Span[]) =>
      all.filter((s) => ofRun(s) && s.attributes['orchestrator.model_call'] === true);
    // The run's span ends with the run and leaves through a batching exporter: poll until all are in.
    const spans = await waitFor(
      () => {
        const all = [...collector.spans];
        const run = all.find((s) => s.name === 'RunWorkflow:projectWorkflow' && ofRun(s));
        return run && modelCalls(all).length >= served.requests ? all : undefined;
      },
      'the run, phase and model-call spans at the collector',
      60_000,
    );
    expect(spans.every((s) => s.service === 'orchestrator-traces-test')).toBe(true);
    const run = spans.find((s) => s.name === 'RunWorkflow:projectWorkflow' && ofRun(s))!;
    expect(run.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(run.spanId).toMatch(/^[0-9a-f]{16}$/);

    // The phase: a span of its own, a child of the run's.
    const phase = spans.find((s) => s.name === 'Phase:development' && ofRun(s));
    expect(phase, 'a Phase:development span of this run').toBeDefined();
    expect(phase!.traceId).toBe(run.traceId);
    expect(phase!.parentSpanId).toBe(run.spanId);
    expect(phase!.attributes['orchestrator.phase']).toBe('development');
    expect(phase!.attributes['orchestrator.attempt']).toBe(1);

    // Every model request the server served is one model-call span, inside the phase, with its tokens.
    const calls = modelCalls(spans);
    expect(calls).toHaveLength(served.requests);
    for (const call of calls) {
      expect(call.name).toBe('RunActivity:apiTurn');
      expect(call.traceId).toBe(run.traceId);
      expect(descendsFrom(call, phase!, spans)).toBe(true);
      expect(call.attributes['orchestrator.agent']).toBe('development-developer');
      expect(call.attributes['temporalWorkflowId']).toBeTypeOf('string');
      expect(call.attributes['gen_ai.request.model']).toBeTypeOf('string');
      expect(call.attributes['gen_ai.response.model']).toBeTypeOf('string');
      expect(call.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0);
    }
    // Tokens on the spans add up to what the server served (api agents cache their prompt prefix).
    const tokens = calls.reduce(
      (n, c) =>
        n +
        Number(c.attributes['gen_ai.usage.input_tokens']) +
        Number(c.attributes['gen_ai.usage.output_tokens']) +
        Number(c.attributes['gen_ai.usage.cache_read.input_tokens'] ?? 0) +
        Number(c.attributes['gen_ai.usage.cache_creation.input_tokens'] ?? 0),
      0,
    );
    expect(tokens).toBe(served.tokens);
    // The agent's child workflow is in the same trace, tagged with its phase.
    const agent = spans.find(
      (s) =>
        s.name === 'RunWorkflow:agentWorkflow' &&
        s.attributes['orchestrator.phase'] === 'development' &&
        ofRun(s),
    );
    expect(agent?.traceId).toBe(run.traceId);
  });
});
