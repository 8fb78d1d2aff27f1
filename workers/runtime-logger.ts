import { DefaultLogger, type LogEntry, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import type { Logger } from '../src/logger';

let installed = false;

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
      switch (entry.level) {
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
