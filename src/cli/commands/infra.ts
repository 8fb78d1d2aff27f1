/** `orchestrator dev`, `worker` and `server start|stop|status`. */
import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import pc from 'picocolors';
import {
  ensureDetachedServer,
  ensureTemporalCli,
  readServerState,
  startDevServer,
  stopPid,
} from '../../devserver';
import { runWorkerUntilSignal } from '../../../workers/worker';
import { configFrom, loggerFor, printJson } from '../context';

/** Commander argument parser for ports: a clear message instead of NaN. */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new InvalidArgumentError(`must be a port number 1-65535, got "${value}"`);
  }
  return n;
}

export function registerInfraCommands(program: Command): void {
  program
    .command('dev')
    .description('start the embedded Temporal dev server and a worker; prints the Web UI address')
    .option('--port <port>', 'frontend gRPC port', parsePort)
    .option('--ui-port <port>', 'Web UI port', parsePort)
    .action(async (opts: { port?: number; uiPort?: number }, cmd: Command) => {
      const base = configFrom(cmd);
      const cliPath = await ensureTemporalCli();
      const server = await startDevServer({
        cliPath,
        dbFile: path.join(base.home, 'temporal.db'),
        logFile: path.join(base.home, 'temporal.log'),
        port: opts.port ?? 7233,
        uiPort: opts.uiPort ?? 8233,
      });
      const config = { ...base, temporal: { ...base.temporal, address: server.address } };
      const logger = loggerFor(config);
      process.stderr.write(
        `${pc.green('Temporal dev server')} at ${server.address}\n${pc.green('Web UI')}: ${server.uiUrl ?? '(headless)'}\n`,
      );
      try {
        await runWorkerUntilSignal({ config, logger });
      } finally {
        await server.stop();
      }
    });

  program
    .command('worker')
    .description('run a worker on the configured task queue until SIGINT/SIGTERM')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      await runWorkerUntilSignal({ config, logger: loggerFor(config) });
    });

  const server = program.command('server').description('manage a detached dev server for this project');
  server
    .command('start')
    .description(
      'start the dev server in the background (SQLite under .orchestrator/) unless it runs already',
    )
    .option('--port <port>', 'frontend gRPC port', parsePort)
    .option('--ui-port <port>', 'Web UI port', parsePort)
    .option('--json', 'print the server state as JSON')
    .action(async (opts: { port?: number; uiPort?: number; json?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      const state = await ensureDetachedServer(config.home, opts.port ?? 7233, opts.uiPort ?? 8233);
      if (opts.json) printJson(state);
      else process.stdout.write(`server ${state.address} (pid ${state.pid}); Web UI ${state.uiUrl ?? '-'}\n`);
    });
  server
    .command('status')
    .description('show whether the detached dev server runs')
    .option('--json', 'print the server state as JSON')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const state = readServerState(configFrom(cmd).home);
      if (opts.json) printJson(state ?? null);
      else
        process.stdout.write(
          state ? `running: ${state.address}, Web UI ${state.uiUrl ?? '-'}\n` : 'not running\n',
        );
    });
  server
    .command('stop')
    .description('stop the detached dev server')
    .action(async (_o: unknown, cmd: Command) => {
      const state = readServerState(configFrom(cmd).home);
      if (!state) return void process.stdout.write('not running\n');
      await stopPid(state.pid);
      process.stdout.write(`stopped server pid ${state.pid}\n`);
    });
}
