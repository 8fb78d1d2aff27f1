/**
 * A worker inside the CLI process, for `orchestrator demo` and `run start --rehearse`: the run is served
 * by this process (on its own task queue) and ends with it.
 */
import { Client, Connection } from '@temporalio/client';
import type { AppConfig } from '../../config/env';
import { connectionOptions } from '../../config/temporal';
import { CLIENT_CHANNEL_ARGS } from '../client-channel';
import type { Logger } from '../logger';
import { warnIgnoredProfileKeys } from './context';
import { retryRefusedQueries } from '../query-retry';

export async function withLocalWorker<T>(
  config: AppConfig,
  logger: Logger,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  warnIgnoredProfileKeys(config.temporal);
  // Loaded here, not with the command: the worker brings the SDK's worker package, its native bridge and
  // every activity (~half a second of CPU), which the `run` and `team` commands' other subcommands, plain
  // clients, never use.
  const [{ installRuntimeLogger }, { createWorker }] = await Promise.all([
    import('../../workers/runtime-logger'),
    import('../../workers/worker'),
  ]);
  installRuntimeLogger(logger, config.metrics);
  const { worker, connection: native } = await createWorker({ config, logger });
  const running = worker.run();
  const connection = await Connection.connect({
    ...connectionOptions(config.temporal),
    channelArgs: CLIENT_CHANNEL_ARGS,
  });
  try {
    return await fn(
      new Client({
        connection,
        namespace: config.temporal.namespace,
        interceptors: { workflow: [retryRefusedQueries()] },
      }),
    );
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await native.close();
  }
}
