/**
 * One redaction step for everything the orchestrator writes: outputs, transcripts, logs, activity results
 * (and so history) and the audit. It removes the actual values of the worker's secrets (ANTHROPIC_API_KEY,
 * TEMPORAL_API_KEY, any variable named like a key, token, secret or password) and anything shaped like a
 * key (`sk-ant-…`, a PEM private key block), wherever they appear in a string.
 */

/** Variables whose values are secrets whatever their shape. */
export const SECRET_ENV_NAMES = [
  'ANTHROPIC_API_KEY',
  'ANTHROPIC_AUTH_TOKEN',
  'TEMPORAL_API_KEY',
  'TEMPORAL_TLS_KEY',
  'TEMPORAL_TLS_CLIENT_KEY',
] as const;
/** Any other variable named like this holds a secret too (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, …). */
const SECRET_NAME = /(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY)/i;
/** Shorter values are not redacted: `1` or `true` would blank out half of every text. */
const MIN_SECRET_LENGTH = 8;

export const REDACTED = '[redacted]';

const KEY_SHAPES: [RegExp, string][] = [
  [/sk-ant-[A-Za-z0-9_-]{6,}/g, `sk-ant-${REDACTED}`],
  // A whole PEM block, or what is left of one when the output was cut at its head or its tail.
  [
    /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g,
    `[redacted private key]`,
  ],
  [/^[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/g, `[redacted private key]`],
];

/** The secret values of an environment, longest first (so a value containing another goes whole). */
export function secretValuesOf(env: NodeJS.ProcessEnv): string[] {
  const values = new Set<string>();
  for (const [name, value] of Object.entries(env)) {
    if (!value || value.length < MIN_SECRET_LENGTH) continue;
    if ((SECRET_ENV_NAMES as readonly string[]).includes(name) || SECRET_NAME.test(name)) values.add(value);
  }
  return [...values].sort((a, b) => b.length - a.length);
}

/** A redaction function for a fixed set of secret values plus the key shapes. */
export function createRedactor(secretValues: readonly string[]): (text: string) => string {
  const values = secretValues.filter((v) => v.length >= MIN_SECRET_LENGTH);
  return (text) => {
    let out = text;
    for (const v of values) if (out.includes(v)) out = out.split(v).join(REDACTED);
    if (!out.includes('sk-ant-') && !out.includes('PRIVATE KEY-----')) return out;
    for (const [re, replacement] of KEY_SHAPES) out = out.replace(re, replacement);
    return out;
  };
}

let current: ((text: string) => string) | undefined;
const extraSecrets = new Set<string>();

/**
 * Adds a secret that is not in the worker's environment (e.g. a key given by a flag or a config file).
 */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH || extraSecrets.has(value)) return;
  extraSecrets.add(value);
  current = undefined;
}

/** Redacts a string with the secrets of this process's environment (read once) and the key shapes. */
export function redact(text: string): string {
  current ??= createRedactor([...secretValuesOf(process.env), ...extraSecrets]);
  return current(text);
}

/** Forget the cached secret values (tests change the environment). */
export function resetRedaction(): void {
  current = undefined;
}

/** Redacts every string inside a JSON-like value (objects, arrays); other values are returned as they are. */
export function redactDeep<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value === 'string') return redact(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v: unknown) => redactDeep(v, seen)) as T;
  // Only plain objects are rebuilt; class instances (Dates, Buffers, errors) keep their identity.
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v, seen);
  return out as T;
}

/**
 * Redacts a stream line by line: a secret split across two chunks is still found, and the body lines of a
 * PEM private key (which look like any base64) are dropped between its BEGIN and END lines.
 */
export class LineRedactor {
  private pending = '';
  private inKey = false;

  /** Feeds a chunk; returns the redacted complete lines (with their newlines). */
  push(chunk: string): string {
    this.pending += chunk;
    const cut = this.pending.lastIndexOf('\n');
    // A very long line without newline is flushed anyway so that memory stays bounded.
    if (cut === -1 && this.pending.length < 64 * 1024) return '';
    const end = cut === -1 ? this.pending.length : cut + 1;
    const complete = this.pending.slice(0, end);
    this.pending = this.pending.slice(end);
    return this.lines(complete);
  }

  /** The redacted rest (a last line without newline). */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest ? this.lines(rest) : '';
  }

  private lines(text: string): string {
    const out: string[] = [];
    for (const line of text.split(/(?<=\n)/)) {
      if (!this.inKey && /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(line)) {
        this.inKey = !/-----END [A-Z0-9 ]*PRIVATE KEY-----/.test(line);
        out.push(`[redacted private key]${line.endsWith('\n') ? '\n' : ''}`);
        continue;
      }
      if (this.inKey) {
        if (/-----END [A-Z0-9 ]*PRIVATE KEY-----/.test(line)) this.inKey = false;
        continue;
      }
      out.push(redact(line));
    }
    return out.join('');
  }
}
