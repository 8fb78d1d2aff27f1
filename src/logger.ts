import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { redact, redactDeep } from './redact';

/** Paths pino redacts wherever they appear in a log object: secrets never reach a log line. */
export const REDACT_PATHS = [
  'ANTHROPIC_API_KEY',
  '*.ANTHROPIC_API_KEY',
  '*.*.ANTHROPIC_API_KEY',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'env.ANTHROPIC_API_KEY',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
  'authorization',
  '*.authorization',
];

/** How log lines look: `auto` is pretty on a terminal and JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * Where the process logs go: stderr, as JSON (one object per line, for files and collectors) or, on a
 * terminal, as readable lines (pino-pretty; colour unless NO_COLOR or not a colour terminal).
 */
export function logDestination(
  format: LogFormat = 'auto',
  out: { isTTY?: boolean; fd?: number } = { isTTY: process.stderr.isTTY, fd: 2 },
): pino.DestinationStream {
  const fd = out.fd ?? 2;
  if (format === 'pretty' || (format === 'auto' && out.isTTY)) {
    // Loaded only here: most processes log JSON, and pino-pretty costs every CLI start a noticeable load.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pretty({ destination: fd, sync: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
  }
  return pino.destination({ dest: fd, sync: true });
}

/**
 * Creates the process logger. Logs go to stderr so that `--json` output on stdout stays clean; tests
 * pass their own destination (the test runner's console, shown only for a failing test).
 */
export function createLogger(
  level: string = 'info',
  bindings: Record<string, unknown> = {},
  destination: pino.DestinationStream = logDestination('auto'),
): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // An error's message and stack are strings like any other: a key quoted in them is redacted too.
      // (The standard serializer's object has a prototype of its own, which redactDeep leaves alone.)
      serializers: { err: (e: Error) => redactDeep({ ...pino.stdSerializers.err(e) }) },
      // Paths catch known fields; values catch a key anywhere else (an error message, a command's output).
      formatters: { log: (obj) => redactDeep(obj) },
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a: unknown) => (typeof a === 'string' ? redact(a) : a)) as Parameters<typeof method>,
          );
        },
      },
    },
    destination,
  );
}
export type { Logger };
