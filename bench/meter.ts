/**
 * `npm run bench:meter`: what the metering gateway adds to a model request. The same streamed Messages API
 * request (real SDK, local model server) is sent alternately straight to the server and through the
 * gateway, in the same run; the report gives p50 and p99 of each and the p50 difference, which must stay
 * within 10 ms. The gateway writes every response to a meter file as in production.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startMeterGateway } from '../src/meter/gateway';
import { startModelServer } from '../src/modelserver';
import { median, percentile } from './harness';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const WARMUP = 10;
const BUDGET_MS = 10;

const server = await startModelServer();
const outputs = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-bench-meter-'));
const gateway = await startMeterGateway({ upstream: server.url, outputsDir: outputs });
const meter = gateway.open({ meterId: 'bench', runId: 'bench', phase: 'bench', agent: 'bench' });
const direct = new Anthropic({ apiKey: 'bench', baseURL: server.url, maxRetries: 0 });
const metered = new Anthropic({ apiKey: 'bench', baseURL: meter.baseURL, maxRetries: 0 });

async function once(client: Anthropic, i: number): Promise<number> {
  const t0 = performance.now();
  await client.messages
    .stream({
      model: 'claude-sonnet-5-5',
      max_tokens: 1000,
      system: 'Role: bench',
      messages: [{ role: 'user', content: `request ${i}: answer briefly` }],
    })
    .finalMessage();
  return performance.now() - t0;
}

const times = { direct: [] as number[], metered: [] as number[] };
for (let i = 0; i < WARMUP + REQUESTS; i++) {
  // Alternate, so drift in machine load hits both sides alike.
  const d = await once(direct, i);
  const m = await once(metered, i);
  if (i >= WARMUP) {
    times.direct.push(d);
    times.metered.push(m);
  }
}
const d50 = median(times.direct);
const m50 = median(times.metered);
const added = m50 - d50;
const fmt = (n: number) => `${n.toFixed(2)} ms`;
console.log(`model requests: ${REQUESTS} each way (streamed, real SDK, local model server)`);
console.log(`direct:  p50 ${fmt(d50)}  p99 ${fmt(percentile(times.direct, 99))}`);
console.log(`metered: p50 ${fmt(m50)}  p99 ${fmt(percentile(times.metered, 99))}`);
console.log(
  `gateway adds ${fmt(added)} p50 (ratio ${(m50 / d50).toFixed(2)}x; budget ${BUDGET_MS} ms): ${added <= BUDGET_MS ? 'OK' : 'OVER BUDGET'}`,
);
meter.close();
await gateway.close();
await server.close();
fs.rmSync(outputs, { recursive: true, force: true });
process.exitCode = added <= BUDGET_MS ? 0 : 1;
