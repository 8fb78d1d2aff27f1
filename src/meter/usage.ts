/**
 * Reads a Messages API response's final usage off the wire, as the bytes pass through: `message_start`
 * carries the id, the served model and the opening usage, each `message_delta` overrides the fields it
 * names (its usage is cumulative), and `message_stop` closes the message. A non-streaming answer is one
 * JSON message. Pure: fed text, returns what it learnt; the gateway decides what to do with it.
 */

/** Usage in Messages API field names (every field present, zero when the API left it out). */
export interface WireUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

/** One complete response: what the meter records. */
export interface FinalMessage {
  id: string;
  /** The model the response names: the one it is priced on. */
  model: string;
  usage: WireUsage;
}

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined;

/** Merges the usage fields present in `raw` over `base` (message_delta semantics). */
export function mergeUsage(base: WireUsage, raw: unknown): WireUsage {
  if (!raw || typeof raw !== 'object') return base;
  const u = raw as Record<string, unknown>;
  const out: WireUsage = { ...base };
  for (const k of [
    'input_tokens',
    'output_tokens',
    'cache_creation_input_tokens',
    'cache_read_input_tokens',
  ] as const) {
    const v = num(u[k]);
    if (v !== undefined) out[k] = v;
  }
  const cc = u.cache_creation;
  if (cc && typeof cc === 'object') {
    const c = cc as Record<string, unknown>;
    out.cache_creation = {
      ephemeral_5m_input_tokens: num(c.ephemeral_5m_input_tokens) ?? 0,
      ephemeral_1h_input_tokens: num(c.ephemeral_1h_input_tokens) ?? 0,
    };
  }
  return out;
}

const EMPTY: WireUsage = {
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

/** The final message of a non-streaming answer, or undefined when the body is not a message. */
export function messageFromJson(body: string): FinalMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const m = v as Record<string, unknown>;
  if (m.type !== 'message' || typeof m.id !== 'string' || typeof m.model !== 'string') return undefined;
  return { id: m.id, model: m.model, usage: mergeUsage(EMPTY, m.usage) };
}

/** Incremental SSE reader: feed chunks in order; `feed` returns the message completed by that chunk. */
export interface SseUsageReader {
  feed(chunk: string): FinalMessage[];
  /** The message started but not stopped (a cut stream), for diagnosis. */
  pending(): FinalMessage | undefined;
}

export function createSseUsageReader(): SseUsageReader {
  let buf = '';
  let current: FinalMessage | undefined;
  const onEvent = (data: string, out: FinalMessage[]) => {
    let ev: Record<string, unknown>;
    try {
      ev = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    if (ev.type === 'message_start') {
      const m = (ev.message ?? {}) as Record<string, unknown>;
      current = {
        id: typeof m.id === 'string' ? m.id : '',
        model: typeof m.model === 'string' ? m.model : '',
        usage: mergeUsage(EMPTY, m.usage),
      };
    } else if (ev.type === 'message_delta' && current) {
      current.usage = mergeUsage(current.usage, ev.usage);
    } else if (ev.type === 'message_stop' && current) {
      out.push(current);
      current = undefined;
    }
  };
  return {
    feed(chunk) {
      buf += chunk;
      const out: FinalMessage[] = [];
      // Events end with a blank line; \r\n endings are legal SSE too.
      for (;;) {
        const m = /\r?\n\r?\n/.exec(buf);
        if (!m) break;
        const block = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        const data = block
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data) onEvent(data, out);
      }
      return out;
    },
    pending: () => current,
  };
}
