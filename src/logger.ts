import pino, { type Logger } from 'pino';
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

/**
 * Creates the process logger. Logs go to stderr so that `--json` output on stdout stays clean; tests
 * pass their own destination (the test runner's console, shown only for a failing test).
 */
export function createLogger(
  level: string = 'info',
  bindings: Record<string, unknown> = {},
  destination: pino.DestinationStream = pino.destination({ dest: 2, sync: true }),
): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
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
