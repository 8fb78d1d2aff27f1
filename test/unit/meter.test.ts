/**
 * The metering gateway against the local model server, through the real SDK: what the meter records
 * equals the server's own tally to the micro-dollar (streamed and not, cache writes and reads, a served
 * model other than the requested one, an unknown served model), a cut stream is charged nothing on both
 * sides, and a limit refuses the next request with an Anthropic-shaped error.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Anthropic, { APIError } from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dearestOfFamily, priceMicroUsd, priceServed } from '../../config/pricing';
import { admit } from '../../src/meter/admission';
import {
  GATEWAY_CLIENT_KEY,
  MAX_REQUEST_BYTES,
  startMeterGateway,
  type MeterGateway,
} from '../../src/meter/gateway';
import { readMeterFile, summarizeMeter } from '../../src/meter/meter';
import { createSseUsageReader } from '../../src/meter/usage';
import { startModelServer, type ModelServer } from '../../src/modelserver';

let srv: ModelServer;
let gw: MeterGateway;
let outputs: string;

beforeAll(async () => {
  srv = await startModelServer({
    serveModel: { 'claude-haiku-5-5': 'claude-opus-5-5', 'claude-sonnet-4-6': 'claude-opus-9-9' },
  });
  outputs = fs.mkdtempSync(path.join(os.tmpdir(), 'meter-'));
  gw = await startMeterGateway({ upstream: srv.url, outputsDir: outputs });
});
afterAll(async () => {
  await gw.close();
  await srv.close();
});

function tallyMicro(since: number): number {
  return srv.requests.slice(since).reduce((s, r) => s + (r.status === 200 ? (r.microUsd ?? 0) : 0), 0);
}

describe('pricing in integer micro-dollars', () => {
  it('prices exactly, rounding once per response', () => {
    // 3 tokens × $0.125/M = 0.375 µ$ → 0; 5 × 0.125 = 0.625 → 1 (half up, once).
    const u = (n: number) => ({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: n });
    expect(priceMicroUsd('claude-haiku-5-5', u(3))).toBe(0);
    expect(priceMicroUsd('claude-haiku-5-5', u(5))).toBe(1);
    expect(
      priceMicroUsd('opus', {
        input_tokens: 100,
        cache_creation_input_tokens: 20,
        cache_read_input_tokens: 30,
        output_tokens: 7,
      }),
    ).toBe(646);
  });

  it('charges an unknown served model at the dearest price of its family, flagged, never $0', () => {
    expect(dearestOfFamily('claude-opus-9-9')).toBe('claude-opus-5');
    const p = priceServed('claude-opus-9-9', { input_tokens: 1000, output_tokens: 1000 });
    expect(p.unknownModel).toBe(true);
    expect(p.microUsd).toBe(priceMicroUsd(p.pricedAs, { input_tokens: 1000, output_tokens: 1000 }));
    expect(p.microUsd).toBeGreaterThan(0);
    expect(priceServed('gpt-x', { output_tokens: 10 }).microUsd).toBeGreaterThan(0);
  });
});

describe('SSE usage reader', () => {
  it('takes message_start usage, overridden by message_delta, across split chunks', () => {
    const r = createSseUsageReader();
    const text =
      'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","model":"claude-opus-5-5","usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":5}}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":42}}\n\n' +
      'event: message_stop\ndata: {"type":"message_stop"}\n\n';
    const got = [...text].flatMap((ch) => r.feed(ch));
    expect(got).toEqual([
      {
        id: 'm1',
        model: 'claude-opus-5-5',
        usage: {
          input_tokens: 10,
          output_tokens: 42,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 5,
        },
      },
    ]);
  });
});

describe('admission', () => {
  it('refuses at the widest exhausted level, in USD or tokens', () => {
    const s = (microUsd: number, tokens: number) => ({ microUsd, tokens });
    const who = { phase: 'dev', agent: 'a' };
    expect(
      admit({ run: { microUsd: 10 } }, { run: s(9, 0), phase: s(9, 0), agent: s(9, 0) }, who),
    ).toBeUndefined();
    expect(
      admit(
        { run: { microUsd: 10 }, agent: { tokens: 5 } },
        { run: s(10, 9), phase: s(10, 9), agent: s(10, 9) },
        who,
      )?.level,
    ).toBe('run');
    const r = admit({ phase: { tokens: 500 } }, { run: s(0, 600), phase: s(0, 600), agent: s(0, 1) }, who);
    expect(r?.message).toBe('phase "dev" token budget exhausted: limit 500 tokens, 600 tokens spent');
  });
});

describe('metering gateway', () => {
  it('meters streamed and plain answers on the served model, equal to the server tally', async () => {
    const since = srv.requests.length;
    const h = gw.open({ meterId: 'dev-a-1', runId: 'run1', phase: 'dev', agent: 'a' });
    const client = new Anthropic({ apiKey: 'secret-key', baseURL: h.baseURL, maxRetries: 0 });
    const system = [
      { type: 'text' as const, text: 'Role: x', cache_control: { type: 'ephemeral' as const } },
    ];
    const a = await client.messages
      .stream({
        model: 'haiku',
        max_tokens: 500,
        system,
        messages: [{ role: 'user', content: 'hi @cost 77' }],
      })
      .finalMessage();
    const b = await client.messages.create({
      model: 'claude-opus-5-5',
      max_tokens: 500,
      system,
      messages: [{ role: 'user', content: 'again' }],
    });
    const c = await client.messages.create({
      model: 'claude-sonnet-4-6',
      max_tokens: 500,
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(a.model).toBe('claude-opus-5-5');
    expect(b.usage.cache_read_input_tokens).toBeGreaterThan(0);
    const recs = readMeterFile(h.meterFile);
    expect(recs.map((r) => r.id)).toEqual([a.id, b.id, c.id]);
    expect(recs[0]!.usage.output_tokens).toBe(a.usage.output_tokens);
    expect(recs[2]).toMatchObject({
      model: 'claude-opus-9-9',
      unknownModel: true,
      pricedAs: 'claude-opus-5',
    });
    expect(summarizeMeter(recs).microUsd).toBe(tallyMicro(since));
    expect(h.spent().microUsd).toBe(tallyMicro(since));
    expect(fs.readFileSync(h.meterFile, 'utf8')).not.toContain('secret-key');
    h.close();
    await expect(
      client.messages.create({ model: 'haiku', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toThrow(/unknown or closed meter/);
  });

  it('a stream cut by the client is charged nothing, on both sides', async () => {
    const since = srv.requests.length;
    const h = gw.open({ meterId: 'dev-a-2', runId: 'run2', phase: 'dev', agent: 'a' });
    const client = new Anthropic({ apiKey: 'k', baseURL: h.baseURL, maxRetries: 0 });
    const ac = new AbortController();
    const s = client.messages.stream(
      {
        model: 'opus',
        max_tokens: 500,
        messages: [{ role: 'user', content: 'slow\n@sleep 3000\n@say late' }],
      },
      { signal: ac.signal },
    );
    s.on('streamEvent', (e) => {
      if (e.type === 'message_start') ac.abort();
    });
    await expect(s.finalMessage()).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(readMeterFile(h.meterFile)).toEqual([]);
    expect(tallyMicro(since)).toBe(0);
  });

  it('refuses the request after the one that crossed a limit, Anthropic-shaped, and reports it', async () => {
    const refusals: string[] = [];
    const h = gw.open({
      meterId: 'dev-b-1',
      runId: 'run3',
      phase: 'dev',
      agent: 'b',
      limits: { agent: { microUsd: 1 } },
      onRefuse: (r) => refusals.push(r.level),
    });
    const client = new Anthropic({ apiKey: 'k', baseURL: h.baseURL, maxRetries: 0 });
    await client.messages.create({
      model: 'opus',
      max_tokens: 500,
      messages: [{ role: 'user', content: 'one' }],
    });
    const err = await client.messages
      .create({ model: 'opus', max_tokens: 500, messages: [{ role: 'user', content: 'two' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBe(400);
    expect((err as APIError).message).toMatch(
      /Budget exhausted: agent \\?"b\\?" in phase \\?"dev\\?" USD budget exhausted/,
    );
    expect(refusals).toEqual(['agent']);
    expect(h.refusal()?.level).toBe('agent');
    // A sibling registration of the same run sees the spend too (run-level sharing).
    const sib = gw.open({
      meterId: 'dev-c-1',
      runId: 'run3',
      phase: 'dev',
      agent: 'c',
      limits: { phase: { microUsd: 1 } },
    });
    const c2 = new Anthropic({ apiKey: 'k', baseURL: sib.baseURL, maxRetries: 0 });
    await expect(
      c2.messages.create({ model: 'opus', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toThrow(/phase \\?"dev/);
  });
});

describe('the gateway holds the API key', () => {
  it('sends the real key upstream in place of the stand-in its agents are given; a server wanting the key refuses others', async () => {
    const key = 'sk-ant-test-gateway-only-0123456789';
    const keyed = await startModelServer({ apiKey: key });
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'meter-key-'));
    const holder = await startMeterGateway({ upstream: keyed.url, outputsDir: out, apiKey: key });
    try {
      const h = holder.open({ meterId: 'k-1', runId: 'runk', phase: 'dev', agent: 'k' });
      expect(h.clientKey).toBe(GATEWAY_CLIENT_KEY);
      const client = new Anthropic({ apiKey: h.clientKey, baseURL: h.baseURL, maxRetries: 0 });
      const msg = await client.messages.create({
        model: 'opus',
        max_tokens: 50,
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(msg.usage.output_tokens).toBeGreaterThan(0);
      expect(h.spent().microUsd).toBe(keyed.requests[0]!.microUsd);
      // Straight to the server with the stand-in: refused, as the API refuses a wrong key.
      const direct = new Anthropic({ apiKey: GATEWAY_CLIENT_KEY, baseURL: keyed.url, maxRetries: 0 });
      const err = await direct.messages
        .create({ model: 'opus', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
        .catch((e: unknown) => e);
      expect((err as APIError).status).toBe(401);
      // A gateway without a key gives none: the client's own credentials pass through.
      expect(gw.open({ meterId: 'k-2', runId: 'runk', phase: 'dev', agent: 'k' }).clientKey).toBeUndefined();
    } finally {
      await holder.close();
      await keyed.close();
    }
  });
});

describe('an upstream that closed an idle kept-alive connection', () => {
  it('gets the request again on a new connection: served and charged once, and the agent sees no error', async () => {
    const model = await startModelServer();
    // In front of the model server: each connection carries one request; a second one on the same
    // connection is answered with a reset, as a server that has just closed an idle connection does.
    let resets = 0;
    const proxy = net.createServer((client) => {
      const server = net.connect(Number(new URL(model.url).port), '127.0.0.1');
      let answered = false;
      client.on('data', (d) => {
        if (!answered) return void server.write(d);
        resets += 1;
        server.destroy();
        client.resetAndDestroy();
      });
      server.on('data', (d) => {
        answered = true;
        client.write(d);
      });
      server.on('close', () => client.destroy());
      client.on('error', () => server.destroy());
      server.on('error', () => client.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'meter-reset-'));
    const g = await startMeterGateway({
      upstream: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
      outputsDir: out,
    });
    try {
      const h = g.open({ meterId: 'r-1', runId: 'runr', phase: 'dev', agent: 'r' });
      const client = new Anthropic({ apiKey: 'test', baseURL: h.baseURL, maxRetries: 0 });
      for (let i = 0; i < 2; i++) {
        const msg = await client.messages.create({
          model: 'opus',
          max_tokens: 20,
          messages: [{ role: 'user', content: `turn ${i}` }],
        });
        expect(msg.usage.output_tokens).toBeGreaterThan(0);
      }
      // The second request went out on the first one's connection, was reset, and was sent again.
      expect(resets).toBe(1);
      const served = model.requests.filter((r) => r.status === 200);
      expect(served).toHaveLength(2);
      expect(h.spent().microUsd).toBe(served.reduce((sum, r) => sum + (r.microUsd ?? 0), 0));
    } finally {
      await g.close();
      await new Promise<void>((r) => proxy.close(() => r()));
      await model.close();
    }
  });
});

describe('a request larger than the API takes', () => {
  it('is answered 413 request_too_large by the gateway, which holds none of it, and nothing is served', async () => {
    const since = srv.requests.length;
    const h = gw.open({ meterId: 'big-1', runId: 'runbig', phase: 'dev', agent: 'big' });
    const body = Buffer.alloc(MAX_REQUEST_BYTES + 1024 * 1024, 0x20);
    const r = await fetch(`${h.baseURL}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'test', 'anthropic-version': '2023-06-01' },
      body,
    });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe('request_too_large');
    expect(srv.requests.length).toBe(since);
    expect(h.spent().microUsd).toBe(0);
  });
});
