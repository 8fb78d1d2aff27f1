import { DefaultLogger, type LogEntry, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import type { Logger } from '../src/logger';

let installed = false;

/**
 * SDK lines that say what our design intends, logged at debug instead of their own level: three of a
 * worker's four Temporal workers run activities only (agent turns, the host's queues), and the SDK warns
 * about each at every start, in the middle of `make demo`'s output.
 */
const EXPECTED_WARNINGS: ReadonlySet<string> = new Set([
  'No workflows registered, not polling for workflow tasks',
]);

/** The level an SDK log entry is written at: its own, but debug for an {@link EXPECTED_WARNINGS} line. */
export function sdkLogLevel(entry: Pick<LogEntry, 'level' | 'message'>): LogEntry['level'] {
  return entry.level === 'WARN' && EXPECTED_WARNINGS.has(entry.message) ? 'DEBUG' : entry.level;
}

/**
 * Bridges the Temporal runtime (SDK core, workflow `log`, activity `log`) into our pino logger so that every
 * line has one format and one redaction policy. Runtime.install may run once per process, hence the guard.
 * With `metrics`, the runtime also serves Prometheus `/metrics` there: the SDK's own metrics and ours
 * (workflow and activity `metricMeter`), from one endpoint.
 */
export function installRuntimeLogger(logger: Logger, metrics?: { bindAddress: string }): void {
  if (installed) return;
  installed = true;
  const level = logger.level === 'trace' ? 'TRACE' : logger.level === 'debug' ? 'DEBUG' : 'INFO';
  Runtime.install({
    logger: new DefaultLogger(level, (entry: LogEntry) => {
      const meta = { ...entry.meta, sdk: 'temporal' };
      switch (sdkLogLevel(entry)) {
        case 'TRACE':
          logger.trace(meta, entry.message);
          break;
        case 'DEBUG':
          logger.debug(meta, entry.message);
          break;
        case 'WARN':
          logger.warn(meta, entry.message);
          break;
        case 'ERROR':
          logger.error(meta, entry.message);
          break;
        default:
          logger.info(meta, entry.message);
      }
    }),
    // The SDK core's own (Rust) lines come through the same logger instead of straight to the console.
    telemetryOptions: {
      logging: {
        forward: {},
        filter: makeTelemetryFilterString({ core: level === 'INFO' ? 'WARN' : level }),
      },
      ...(metrics ? { metrics: { prometheus: { bindAddress: metrics.bindAddress } } } : {}),
    },
  });
}
