/**
 * A local Anthropic Messages-API server: the only stand-in for the model in tests and rehearsals. The real
 * `claude` CLI and the real `@anthropic-ai/sdk` talk to it over HTTP exactly as they talk to the API, so every
 * layer above the wire (retries, streaming, usage and cost accounting) runs for real.
 *
 * Usage is deterministic: input tokens are derived from the request size (a quarter of its JSON bytes), output
 * tokens from the answer's size, and prompt caching is simulated for requests that carry `cache_control`
 * (the tools + system prefix is a cache write the first time the server sees it, a cache read afterwards).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { priceServed, resolveModel } from '../../config/pricing';
import { type Logger } from '../logger';
import {
  type Brain,
  type BrainReply,
  type Fault,
  type ReplyBlock,
  type WireMessage,
  findCwd,
  firstUserText,
  lastUserText,
  rehearsalBrain,
} from './brain';

export interface ModelServerOptions {
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Decides the answers; default {@link rehearsalBrain}. */
  script?: Brain;
  logger?: Logger;
  /** Serve another model than the one asked for (requested canonical id → served id), as the real API may. */
  serveModel?: Record<string, string>;
  /**
   * The one API key accepted: when set, a Messages request with another `x-api-key` (or none) is answered
   * 401 `authentication_error`, as the API does. Tests use it to see who holds the key.
   */
  apiKey?: string;
}

/** Usage in Messages API field names, as served in one response. */
export interface ServedUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

/** One request the server received, in arrival order. */
export interface ServedRequest {
  seq: number;
  /** When the request arrived (ms since the epoch): tests check retry delays with it. */
  receivedAt: number;
  endpoint: 'messages' | 'count_tokens';
  /** The model the request named. */
  model: string;
  /** The model the response named (messages only, on success). */
  responseModel?: string;
  stream: boolean;
  maxTokens?: number;
  system: string;
  firstUserText: string;
  lastUserText: string;
  toolNames: string[];
  /** The working directory the CLI announced, if any. */
  cwd?: string;
  /** HTTP status answered. */
  status: number;
  stopReason?: string;
  usage?: ServedUsage;
  /** `usage` priced on `responseModel`. */
  costUsd?: number;
  /** The same in integer micro-dollars (config/pricing's one rounding rule): what the tally sums. */
  microUsd?: number;
  /** Error type answered, for failures. */
  error?: string;
  /** Content blocks answered (tool inputs included). */
  content?: ReplyBlock[];
}

export interface ModelTotals extends ServedUsage {
  requests: number;
  costUsd: number;
  /** Integer micro-dollars served: the figure ledgers are compared with, exactly. */
  microUsd: number;
}

export interface ModelServer {
  /** Base URL for `ANTHROPIC_BASE_URL` / the SDK's `baseURL`, e.g. `http://127.0.0.1:40123`. */
  url: string;
  port: number;
  /** Every request received, oldest first. */
  readonly requests: ServedRequest[];
  /** Queues faults; each is consumed by the next `/v1/messages` request, first in first out. */
  injectFaults(...faults: Fault[]): void;
  /** Drops the faults not consumed yet. */
  clearFaults(): void;
  /** Usage served (successful responses only), summed per response model. Also `GET /_tally`. */
  totals(): Record<string, ModelTotals>;
  close(): Promise<void>;
}

const ContentBlockSchema = z.looseObject({ type: z.string() });
const MessageSchema = z.looseObject({
  role: z.enum(['user', 'assistant', 'system']),
  content: z.union([z.string(), z.array(ContentBlockSchema)]),
});
const SystemSchema = z.union([
  z.string(),
  z.array(z.looseObject({ type: z.string(), text: z.string().optional() })),
]);
const ToolSchema = z.looseObject({ name: z.string() });

const CountTokensSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(MessageSchema),
  system: SystemSchema.optional(),
  tools: z.array(ToolSchema).optional(),
});
const MessagesRequestSchema = CountTokensSchema.extend({
  messages: z.array(MessageSchema).min(1, 'must contain at least one message'),
  max_tokens: z.number().int().positive(),
  stream: z.boolean().optional(),
});
type MessagesRequest = z.infer<typeof MessagesRequestSchema>;

const ERROR_TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

const DEFAULT_MESSAGE: Record<string, string> = {
  invalid_request_error: 'Invalid request',
  authentication_error: 'invalid x-api-key',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found',
  rate_limit_error: 'Number of requests has exceeded your rate limit',
  api_error: 'Internal server error',
  overloaded_error: 'Overloaded',
};

class HttpError extends Error {
  constructor(readonly fault: Fault) {
    super(fault.message);
  }
}

function errorBody(fault: Fault): { type: string; message: string } {
  const type =
    fault.errorType ??
    ERROR_TYPE_BY_STATUS[fault.status] ??
    (fault.status >= 500 ? 'api_error' : 'invalid_request_error');
  return { type, message: fault.message ?? DEFAULT_MESSAGE[type] ?? `HTTP ${fault.status}` };
}

/** Token estimate for a JSON value: 4 bytes per token, at least 1. Deterministic, which is all that matters. */
export function estimateTokens(value: unknown): number {
  if (value === undefined) return 0;
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return Math.max(1, Math.ceil(Buffer.byteLength(s) / 4));
}

function systemText(system: MessagesRequest['system']): string {
  if (system === undefined) return '';
  if (typeof system === 'string') return system;
  return system.map((b) => b.text ?? '').join('\n');
}

const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex');

function outputTokensOf(content: ReplyBlock[]): number {
  return content.reduce((n, b) => n + estimateTokens(b.type === 'text' ? b.text : b.input), 0);
}

function chunks(s: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out.length > 0 ? out : [''];
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  const raw = Buffer.concat(parts).toString('utf8');
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw new HttpError({ status: 400, message: 'request body is not valid JSON' });
  }
}

function validationFault(err: z.ZodError): Fault {
  const issue = err.issues[0];
  return { status: 400, message: `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}` };
}

function parseOr400<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw new HttpError(validationFault(r.error));
}

/** Starts the server on 127.0.0.1. Close it with {@link ModelServer.close}. */
export async function startModelServer(opts: ModelServerOptions = {}): Promise<ModelServer> {
  const brain = opts.script ?? rehearsalBrain;
  const log = opts.logger;
  const requests: ServedRequest[] = [];
  const faults: Fault[] = [];
  const seenPrefixes = new Set<string>();
  const attempts = new Map<string, number>();
  let seq = 0;

  function usageFor(body: MessagesRequest, model: string, outputTokens: number): ServedUsage {
    const prefix = { tools: body.tools, system: body.system };
    const prefixTokens = body.tools === undefined && body.system === undefined ? 0 : estimateTokens(prefix);
    const messageTokens = estimateTokens(body.messages);
    const usage: ServedUsage = {
      input_tokens: prefixTokens + messageTokens,
      output_tokens: outputTokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    };
    const raw = JSON.stringify(prefix) + JSON.stringify(body.messages);
    if (prefixTokens > 0 && raw.includes('"cache_control"')) {
      const key = hash([model, prefix]);
      usage.input_tokens = messageTokens;
      if (seenPrefixes.has(key)) {
        usage.cache_read_input_tokens = prefixTokens;
      } else {
        seenPrefixes.add(key);
        usage.cache_creation_input_tokens = prefixTokens;
        if (raw.includes('"ttl":"1h"')) usage.cache_creation.ephemeral_1h_input_tokens = prefixTokens;
        else usage.cache_creation.ephemeral_5m_input_tokens = prefixTokens;
      }
    }
    return usage;
  }

  function sendError(res: http.ServerResponse, fault: Fault): void {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
    // Tell the SDK explicitly, as the API does, so its retry decision does not depend on heuristics.
    headers['x-should-retry'] = String(fault.status === 429 || fault.status >= 500);
    res.writeHead(fault.status, headers);
    res.end(JSON.stringify({ type: 'error', error: errorBody(fault) }));
  }

  function clientClosed(entry: ServedRequest): void {
    entry.status = 499;
    entry.error = 'client_closed';
  }

  async function handleMessages(req: http.IncomingMessage, res: http.ServerResponse, entry: ServedRequest) {
    const raw = await readJson(req);
    let fault = faults.shift();
    const rawObj = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    entry.model = typeof rawObj.model === 'string' ? rawObj.model : '';
    entry.stream = rawObj.stream === true;
    const parsed = MessagesRequestSchema.safeParse(raw);
    if (parsed.success) {
      const messages = parsed.data.messages as WireMessage[];
      const system = systemText(parsed.data.system);
      Object.assign(entry, {
        maxTokens: parsed.data.max_tokens,
        system,
        firstUserText: firstUserText(messages),
        lastUserText: lastUserText(messages),
        toolNames: (parsed.data.tools ?? []).map((t) => t.name),
        cwd: findCwd(system, messages),
      });
    }
    if (fault?.stallMs !== undefined) {
      const closed = new AbortController();
      res.on('close', () => closed.abort());
      await delay(fault.stallMs, undefined, { signal: closed.signal }).catch(() => undefined);
      if (closed.signal.aborted) return clientClosed(entry);
      fault = undefined;
    }
    // An injected fault wins over everything, even a malformed body: tests decide the answer.
    if (fault && !(fault.midStream && entry.stream)) throw new HttpError(fault);
    if (!parsed.success) throw new HttpError(validationFault(parsed.error));

    const body = parsed.data;
    const messages = body.messages as WireMessage[];
    const system = entry.system;
    const canonical = resolveModel(body.model);
    if (!canonical) throw new HttpError({ status: 404, message: `model: ${body.model}` });
    const served = opts.serveModel?.[canonical] ?? canonical;

    const convKey = hash([canonical, messages.filter((m) => m.role !== 'system')]);
    const attempt = (attempts.get(convKey) ?? 0) + 1;
    attempts.set(convKey, attempt);

    const reply: BrainReply = await brain({
      model: canonical,
      system,
      messages,
      toolNames: entry.toolNames,
      maxTokens: body.max_tokens,
      attempt,
    });
    if (reply.type === 'error') throw new HttpError(reply.fault);

    let content = reply.content;
    let stopReason =
      reply.stopReason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');
    let outputTokens = reply.outputTokens ?? outputTokensOf(content);
    if (outputTokens > body.max_tokens) {
      // A tiny max_tokens (the CLI's quota probe uses 1) gets truncated text, as the real API would give.
      if (reply.outputTokens === undefined) {
        const text = content.map((b) => (b.type === 'text' ? b.text : '')).join('');
        content = [{ type: 'text', text: text.slice(0, body.max_tokens * 4) }];
        stopReason = 'max_tokens';
      }
      outputTokens = body.max_tokens;
    }
    const usage = usageFor(body, served, outputTokens);
    const id = `msg_${String(entry.seq).padStart(6, '0')}_${hash(messages).slice(0, 12)}`;
    const blocks = content.map((b, i) =>
      b.type === 'text'
        ? b
        : { type: 'tool_use' as const, id: `toolu_${id.slice(4)}_${i}`, name: b.name, input: b.input },
    );
    // A served model missing from the price table is billed at its family's dearest price, as our meter does.
    const { microUsd } = priceServed(served, usage);
    const costUsd = microUsd / 1e6;
    // Usage is recorded only once the whole answer went out: an aborted or failed stream served nothing.
    const commit = () => {
      Object.assign(entry, {
        status: 200,
        responseModel: served,
        stopReason,
        usage,
        costUsd,
        microUsd,
        content,
      });
    };

    const message = {
      id,
      type: 'message',
      role: 'assistant',
      model: served,
      content: blocks,
      stop_reason: stopReason,
      stop_sequence: null,
      usage,
    };

    const aborted = new AbortController();
    res.on('close', () => aborted.abort());

    if (!entry.stream) {
      if (reply.delayMs)
        await delay(reply.delayMs, undefined, { signal: aborted.signal }).catch(() => undefined);
      if (aborted.signal.aborted) return clientClosed(entry);
      commit();
      res.writeHead(200, { 'content-type': 'application/json', 'request-id': `req_${entry.seq}` });
      res.end(JSON.stringify(message));
      return;
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': `req_${entry.seq}`,
    });
    const send = (type: string, data: Record<string, unknown>) => {
      if (!res.writableEnded) res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    };
    send('message_start', {
      message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } },
    });
    send('ping', {});
    if (fault?.midStream) {
      entry.status = 200;
      entry.error = errorBody(fault).type;
      send('error', { error: errorBody(fault) });
      res.end();
      return;
    }
    if (reply.delayMs) {
      // Pings during the wait keep the stream visibly alive (clients heartbeat on events).
      const until = Date.now() + reply.delayMs;
      while (Date.now() < until && !aborted.signal.aborted) {
        await delay(Math.min(500, until - Date.now()), undefined, { signal: aborted.signal }).catch(
          () => undefined,
        );
        send('ping', {});
      }
      if (aborted.signal.aborted) return clientClosed(entry);
    }
    blocks.forEach((b, index) => {
      if (b.type === 'text') {
        send('content_block_start', { index, content_block: { type: 'text', text: '' } });
        for (const text of chunks(b.text, 64))
          send('content_block_delta', { index, delta: { type: 'text_delta', text } });
      } else {
        send('content_block_start', {
          index,
          content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} },
        });
        for (const partial_json of chunks(JSON.stringify(b.input), 64)) {
          send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } });
        }
      }
      send('content_block_stop', { index });
    });
    send('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: outputTokens },
    });
    send('message_stop', {});
    commit();
    res.end();
  }

  async function handleCountTokens(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: ServedRequest,
  ) {
    const body = parseOr400(CountTokensSchema, await readJson(req));
    entry.model = body.model;
    const prefix =
      body.tools === undefined && body.system === undefined
        ? 0
        : estimateTokens({ tools: body.tools, system: body.system });
    entry.status = 200;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ input_tokens: prefix + estimateTokens(body.messages) }));
  }

  function totals(): Record<string, ModelTotals> {
    const out: Record<string, ModelTotals> = {};
    for (const r of requests) {
      if (!r.usage || !r.responseModel) continue;
      const t = (out[r.responseModel] ??= {
        requests: 0,
        costUsd: 0,
        microUsd: 0,
        input_tokens: 0,
        output_tokens: 0,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
      });
      t.requests++;
      t.microUsd += r.microUsd ?? 0;
      t.costUsd = t.microUsd / 1e6;
      t.input_tokens += r.usage.input_tokens;
      t.output_tokens += r.usage.output_tokens;
      t.cache_creation_input_tokens += r.usage.cache_creation_input_tokens;
      t.cache_read_input_tokens += r.usage.cache_read_input_tokens;
      t.cache_creation.ephemeral_5m_input_tokens += r.usage.cache_creation.ephemeral_5m_input_tokens;
      t.cache_creation.ephemeral_1h_input_tokens += r.usage.cache_creation.ephemeral_1h_input_tokens;
    }
    return out;
  }

  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route =
      req.method === 'POST' && pathname === '/v1/messages'
        ? 'messages'
        : req.method === 'POST' && pathname === '/v1/messages/count_tokens'
          ? 'count_tokens'
          : undefined;
    if (req.method === 'GET' && pathname === '/_tally') {
      // What the server served, for tests and rehearsals that compare a ledger with it from outside.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(totals()));
      return;
    }
    if (!route) {
      // The CLI probes reachability with `HEAD /api/hello`; any other path is unknown.
      if (req.method === 'HEAD') {
        res.writeHead(200).end();
      } else {
        sendError(res, { status: 404, message: `${req.method ?? 'GET'} ${pathname} not found` });
      }
      return;
    }
    const entry: ServedRequest = {
      seq: ++seq,
      receivedAt: Date.now(),
      endpoint: route,
      model: '',
      stream: false,
      system: '',
      firstUserText: '',
      lastUserText: '',
      toolNames: [],
      status: 0,
    };
    requests.push(entry);
    if (opts.apiKey !== undefined && req.headers['x-api-key'] !== opts.apiKey) {
      req.resume();
      entry.status = 401;
      entry.error = 'authentication_error';
      sendError(res, { status: 401 });
      return;
    }
    const handler = route === 'messages' ? handleMessages : handleCountTokens;
    handler(req, res, entry)
      .catch((err: unknown) => {
        const fault: Fault =
          err instanceof HttpError
            ? err.fault
            : { status: 500, message: err instanceof Error ? err.message : String(err) };
        entry.status = fault.status;
        entry.error = errorBody(fault).type;
        if (!res.headersSent) sendError(res, fault);
        else res.end();
      })
      .finally(() => {
        log?.debug(
          {
            seq: entry.seq,
            endpoint: entry.endpoint,
            model: entry.model,
            status: entry.status,
            stream: entry.stream,
            usage: entry.usage,
          },
          'model server request',
        );
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  log?.info({ url }, 'model server listening');

  return {
    url,
    port,
    requests,
    injectFaults: (...f) => void faults.push(...f),
    clearFaults: () => void faults.splice(0),
    totals,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
