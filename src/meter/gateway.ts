/**
 * The metering gateway: a small HTTP relay on 127.0.0.1, started by the worker, in front of the Messages
 * API. Every agent's `claude` and SDK client reach the model through it (`ANTHROPIC_BASE_URL` =
 * `http://127.0.0.1:<port>/a/<token>`), where the token, random per registration, names the agent's meter.
 *
 * For each `POST /v1/messages` it first asks {@link admit} whether the run, phase and agent still have room,
 * and refuses with an Anthropic-shaped error when not. Otherwise it forwards the request untouched, reads
 * the answer's final usage off the stream as it passes, and appends the priced response to the agent's
 * meter file before the message's last event reaches the agent. The gateway lives in the worker process:
 * killing the worker kills it, so a `claude` orphaned by a dead worker cannot go on spending unmetered.
 *
 * Headers pass through and are never written anywhere. Given the API key ({@link MeterGatewayOptions.apiKey}),
 * the gateway is the only holder of it: agents get a stand-in, and the real key is set on the way upstream.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger';
import { admit, type MeterLevel, type MeterLimits, type Refusal, type Spent } from './admission';
import {
  appendMeterRecord,
  meterFile,
  meterRecord,
  readRunMeters,
  summarizeMeter,
  type MeterRecord,
  type MeterSummary,
} from './meter';
import { createSseUsageReader, messageFromJson, type FinalMessage } from './usage';

export interface MeterGatewayOptions {
  /** The real Messages API base URL (default https://api.anthropic.com). */
  upstream?: string;
  /** Root of run outputs: meters are `<outputsDir>/<run>/meter/<meterId>.jsonl`. */
  outputsDir: string;
  logger?: Logger;
  /** Port on 127.0.0.1; default 0 (a free one). */
  port?: number;
  /**
   * The real API key. When set, the gateway sends it upstream on every request in place of whatever the
   * agent presented, so agents are given only {@link GATEWAY_CLIENT_KEY} and never hold the key.
   */
  apiKey?: string;
}

/**
 * What an agent's client presents as its API key when the gateway holds the real one: a stand-in with no
 * value anywhere else (the route token in the base URL is what names the meter).
 */
export const GATEWAY_CLIENT_KEY = 'orchestrator-metering-gateway';

/** Who spends through a registration, and within which limits. */
export interface MeterRegistration {
  meterId: string;
  runId: string;
  phase: string;
  agent: string;
  limits?: MeterLimits;
  /** Called once when a request is refused (e.g. to end the agent's process). */
  onRefuse?: (r: Refusal) => void;
  /** Called after each response is recorded (e.g. to heartbeat progress). */
  onRecord?: (r: MeterRecord) => void;
}

export interface MeterHandle {
  /** Base URL for this agent: `ANTHROPIC_BASE_URL` / the SDK's `baseURL`. */
  baseURL: string;
  /**
   * The API key to give this agent's client: {@link GATEWAY_CLIENT_KEY} when the gateway adds the real key
   * upstream, else undefined (the client brings its own credentials, which pass through).
   */
  clientKey?: string;
  meterFile: string;
  /** What this registration recorded (responses completed while it was open). */
  spent(): MeterSummary;
  /** The refusal, once a request was refused. */
  refusal(): Refusal | undefined;
  /** Stops admitting requests under this token; responses already in flight are still recorded. */
  close(): void;
}

export interface MeterGateway {
  url: string;
  port: number;
  open(reg: MeterRegistration): MeterHandle;
  close(): Promise<void>;
}

interface Registration extends MeterRegistration {
  file: string;
  records: MeterRecord[];
  refused?: Refusal;
}

/** What the gateway knows one run has spent: every meter line, by message id. */
type RunSpend = Map<string, Pick<MeterRecord, 'phase' | 'agent' | 'microUsd' | 'tokens'>>;

const MESSAGES = /^\/v1\/messages\/?$/;

/**
 * The largest request the gateway holds (it reads each whole before sending it): the Messages API's own
 * limit, 32 MB. Larger is answered 413 `request_too_large`, as the API answers it, and what still comes
 * is read and dropped, so no agent can make the worker hold more.
 */
export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;

export async function startMeterGateway(opts: MeterGatewayOptions): Promise<MeterGateway> {
  const upstream = new URL(opts.upstream ?? 'https://api.anthropic.com');
  const lib = upstream.protocol === 'https:' ? https : http;
  const agent = new lib.Agent({ keepAlive: true });
  const upstreamPrefix = upstream.pathname.replace(/\/$/, '');
  const log = opts.logger?.child({ component: 'meter-gateway' });
  const tokens = new Map<string, Registration>();
  const runs = new Map<string, RunSpend>();

  function runSpend(runId: string): RunSpend {
    let s = runs.get(runId);
    if (!s) runs.set(runId, (s = new Map() as RunSpend));
    return s;
  }

  /** Re-reads the run's meters from disk: other workers' (or a dead worker's) lines count too. */
  function loadRun(runId: string): void {
    const s = runSpend(runId);
    for (const r of readRunMeters(opts.outputsDir, runId)) {
      if (!s.has(r.id)) s.set(r.id, r);
    }
  }

  function spentAt(reg: Registration): Record<MeterLevel, Spent> {
    const out: Record<MeterLevel, Spent> = {
      run: { microUsd: 0, tokens: 0 },
      phase: { microUsd: 0, tokens: 0 },
      agent: { microUsd: 0, tokens: 0 },
    };
    for (const r of runSpend(reg.runId).values()) {
      const levels: MeterLevel[] = ['run'];
      if (r.phase === reg.phase) levels.push('phase');
      if (r.phase === reg.phase && r.agent === reg.agent) levels.push('agent');
      for (const l of levels) {
        out[l].microUsd += r.microUsd;
        out[l].tokens += r.tokens;
      }
    }
    return out;
  }

  function record(reg: Registration, msg: FinalMessage): void {
    if (!msg.id) return;
    const rec = meterRecord(msg, {
      meterId: reg.meterId,
      runId: reg.runId,
      phase: reg.phase,
      agent: reg.agent,
    });
    const s = runSpend(reg.runId);
    if (s.has(rec.id)) return;
    // Durable first: the line is written before the agent can see the end of the answer.
    appendMeterRecord(reg.file, rec);
    s.set(rec.id, rec);
    reg.records.push(rec);
    reg.onRecord?.(rec);
  }

  function refuse(res: http.ServerResponse, status: number, type: string, message: string): void {
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-should-retry': 'false',
      'x-orchestrator-refusal': type,
    });
    res.end(JSON.stringify({ type: 'error', error: { type, message } }));
  }

  function forward(req: http.IncomingMessage, res: http.ServerResponse, reg: Registration, rest: string) {
    const metered = req.method === 'POST' && MESSAGES.test(rest.replace(/\?.*$/, ''));
    if (metered) {
      const refusal = admit(reg.limits ?? {}, spentAt(reg), { phase: reg.phase, agent: reg.agent });
      if (refusal) {
        const first = !reg.refused;
        reg.refused = refusal;
        log?.warn({ meterId: reg.meterId, reason: refusal.message }, 'model request refused: budget');
        refuse(res, 400, 'invalid_request_error', `Budget exhausted: ${refusal.message}`);
        req.resume();
        if (first) reg.onRefuse?.(refusal);
        return;
      }
    }
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: upstream.host };
    if (opts.apiKey) {
      // The real key is added here, on the way out: the agent only ever held the stand-in.
      headers['x-api-key'] = opts.apiKey;
      delete headers.authorization;
    }
    // Identity encoding, so the usage can be read off the bytes as they pass.
    delete headers['accept-encoding'];
    delete headers.connection;
    // The request is read whole before it is sent, so that it can be sent again once (see below): a
    // Messages request is at most a few MB.
    delete headers['transfer-encoding'];
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_REQUEST_BYTES) return void chunks.push(c);
      if (res.headersSent) return;
      chunks.length = 0;
      log?.warn({ meterId: reg.meterId, bytes: size }, 'model request refused: too large');
      refuse(res, 413, 'request_too_large', `gateway: request exceeds ${MAX_REQUEST_BYTES} bytes`);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (size > MAX_REQUEST_BYTES) return;
      const body = Buffer.concat(chunks);
      headers['content-length'] = body.length;
      send(body, false);
    });
    let current: http.ClientRequest | undefined;
    // The agent went away (killed, cancelled): end the upstream request too, so nothing more is served.
    res.on('close', () => {
      if (!res.writableFinished) current?.destroy();
    });

    function send(body: Buffer, again: boolean): void {
      let answered = false;
      const up = lib.request(
        {
          protocol: upstream.protocol,
          hostname: upstream.hostname,
          port: upstream.port || undefined,
          method: req.method,
          path: upstreamPrefix + rest,
          headers,
          // Sent again, on a connection of its own: another idle one of the pool may be as stale.
          agent: again ? false : agent,
        },
        (upRes) => {
          answered = true;
          const status = upRes.statusCode ?? 502;
          res.writeHead(status, upRes.headers);
          if (!metered || status !== 200) {
            upRes.pipe(res);
            return;
          }
          const sse = String(upRes.headers['content-type'] ?? '').includes('text/event-stream');
          if (sse) {
            const reader = createSseUsageReader();
            upRes.setEncoding('utf8');
            upRes.on('data', (chunk: string) => {
              for (const msg of reader.feed(chunk)) record(reg, msg);
              res.write(chunk);
            });
            upRes.on('end', () => res.end());
          } else {
            let text = '';
            upRes.setEncoding('utf8');
            upRes.on('data', (c: string) => (text += c));
            upRes.on('end', () => {
              const msg = messageFromJson(text);
              if (msg) record(reg, msg);
              res.end(text);
            });
          }
          upRes.on('error', () => res.destroy());
        },
      );
      current = up;
      up.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the upstream closed while it lay idle: reset as the request went out on
        // it, before any answer. The upstream never read that request (Node's documented case for
        // `reusedSocket`), so nothing was served or charged: it is sent once more, on a new connection.
        // Otherwise the agent's CLI got a 502 it must not retry, and the turn failed for the worker's sake.
        if (!again && !answered && up.reusedSocket && err.code === 'ECONNRESET' && !res.destroyed) {
          log?.info({ meterId: reg.meterId }, 'upstream closed an idle connection: request sent again');
          send(body, true);
          return;
        }
        log?.warn({ meterId: reg.meterId, err: err.message }, 'upstream request failed');
        if (!res.headersSent) refuse(res, 502, 'api_error', `gateway: upstream unreachable (${err.message})`);
        else res.destroy();
      });
      up.end(body);
    }
  }

  const server = http.createServer((req, res) => {
    const m = /^\/a\/([A-Za-z0-9_-]+)(\/.*)?$/.exec(req.url ?? '');
    const reg = m ? tokens.get(m[1]!) : undefined;
    if (!m || !reg) {
      req.resume();
      refuse(res, 403, 'permission_error', 'gateway: unknown or closed meter token');
      return;
    }
    forward(req, res, reg, m[2] ?? '/');
  });
  server.keepAliveTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  // A worker must be able to exit while the gateway listens.
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  log?.info({ url, upstream: upstream.origin }, 'metering gateway listening');

  return {
    url,
    port,
    open(r) {
      const token = randomBytes(16).toString('hex');
      const reg: Registration = {
        ...r,
        file: meterFile(opts.outputsDir, r.runId, r.meterId),
        records: [],
      };
      loadRun(r.runId);
      tokens.set(token, reg);
      return {
        baseURL: `${url}/a/${token}`,
        ...(opts.apiKey ? { clientKey: GATEWAY_CLIENT_KEY } : {}),
        meterFile: reg.file,
        spent: () => summarizeMeter(reg.records),
        refusal: () => reg.refused,
        close: () => {
          tokens.delete(token);
          // Forget a run nobody spends on here any more; the next registration re-reads it from disk.
          if (![...tokens.values()].some((t) => t.runId === r.runId)) runs.delete(r.runId);
        },
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}
