/** `orchestrator dev`, `worker` and `server start|stop|status`. */
import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import pc from 'picocolors';
import {
  clearServerState,
  describeExit,
  ensureDetachedServer,
  ensureTemporalCli,
  portOpen,
  readServerState,
  startDevServer,
  stopPid,
  writeServerState,
} from '../../devserver';
import type { runWorkerUntilSignal } from '../../../workers/worker';
import { CliError, configFrom, loggerFor, printJson, withClient } from '../context';
import { ensureSearchAttributes } from '../../search-attributes';

/** Commander argument parser for ports: a clear message instead of NaN. */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new InvalidArgumentError(`must be a port number 1-65535, got "${value}"`);
  }
  return n;
}

const DEFAULT_PORT = 7233;
const DEFAULT_UI_PORT = 8233;

/**
 * The ports `orchestrator dev` listens on: the defaults, or free ones when another server holds them
 * (said in one line). A port asked for with a flag that is taken is an error: we never join another
 * server by accident.
 */
async function choosePorts(opts: {
  port?: number;
  uiPort?: number;
}): Promise<{ port?: number; uiPort?: number }> {
  let port: number | undefined = opts.port ?? DEFAULT_PORT;
  let uiPort: number | undefined = opts.uiPort ?? DEFAULT_UI_PORT;
  for (const [flag, asked] of [
    ['--port', opts.port],
    ['--ui-port', opts.uiPort],
  ] as const) {
    if (asked !== undefined && (await portOpen(asked)))
      throw new CliError(`${flag} ${asked}: the port is taken; choose another or stop what listens there`, 2);
  }
  if (await portOpen(port)) {
    process.stderr.write(
      `port ${port} is taken (another Temporal server?); starting this project's dev server on free ports instead\n`,
    );
    port = undefined;
    if (opts.uiPort === undefined) uiPort = undefined;
  }
  if (uiPort !== undefined && opts.uiPort === undefined && (await portOpen(uiPort))) uiPort = undefined;
  return { port, uiPort };
}

/**
 * Runs a worker until a signal. Its module (the SDK's worker package, its native bridge, every activity)
 * is loaded only by the commands that run one: `server` and `setup`, plain clients, never need it.
 */
async function runWorker(...args: Parameters<typeof runWorkerUntilSignal>): Promise<void> {
  const worker = await import('../../../workers/worker');
  await worker.runWorkerUntilSignal(...args);
}

export function registerInfraCommands(program: Command): void {
  program
    .command('dev')
    .description('start the embedded Temporal dev server and a worker; prints the Web UI address')
    .option('--port <port>', 'frontend gRPC port', parsePort)
    .option('--ui-port <port>', 'Web UI port', parsePort)
    .action(async (opts: { port?: number; uiPort?: number }, cmd: Command) => {
      const base = configFrom(cmd, { projectServer: false });
      const logger = () => loggerFor(config);
      let config = base;
      // This project's detached server (`server start`) already runs: use it (same database file).
      const existing = readServerState(base.home);
      if (existing) {
        config = { ...base, temporal: { ...base.temporal, address: existing.address } };
        process.stderr.write(
          `${pc.green('Temporal dev server')} of this project at ${existing.address} (pid ${existing.pid})\n${pc.green('Web UI')}: ${existing.uiUrl ?? '(headless)'}\n`,
        );
        await runWorker({ config, logger: logger() });
        return;
      }
      const { port, uiPort } = await choosePorts(opts);
      const cliPath = await ensureTemporalCli();
      const server = await startDevServer({
        cliPath,
        dbFile: path.join(base.home, 'temporal.db'),
        logFile: path.join(base.home, 'temporal.log'),
        port,
        uiPort,
      });
      writeServerState(base.home, {
        pid: server.pid,
        address: server.address,
        uiUrl: server.uiUrl,
        dbFile: server.dbFile,
      });
      config = { ...base, temporal: { ...base.temporal, address: server.address } };
      process.stderr.write(
        `${pc.green('Temporal dev server')} at ${server.address}\n${pc.green('Web UI')}: ${server.uiUrl ?? '(headless)'}\n`,
      );
      let died: string | undefined;
      const exited = server.exited.then((e) => {
        died = describeExit(e);
      });
      try {
        await runWorker({ config, logger: logger() }, exited);
      } catch (err) {
        // A server that died while the worker started fails the start too (after the SDK's retries):
        // the server's death is the reason to report.
        if (died === undefined) throw err;
      } finally {
        clearServerState(base.home, server.pid);
        await server.stop();
      }
      if (died !== undefined) {
        throw new CliError(
          `the Temporal dev server (pid ${server.pid}) ${died} (log: ${path.join(base.home, 'temporal.log')})`,
        );
      }
    });

  program
    .command('worker')
    .description('run a worker on the configured task queue until SIGINT/SIGTERM')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      await runWorker({ config, logger: loggerFor(config) });
    });

  program
    .command('setup')
    .description(
      "register the project's search attributes on the namespace (an existing cluster; our dev server does it itself)",
    )
    .option('--json', 'print what was registered as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client, config) => {
        const r = await ensureSearchAttributes(client.connection.operatorService, config.temporal.namespace);
        if (opts.json) return printJson(r);
        if (r.missing.length > 0)
          throw new CliError(
            `could not register ${r.missing.join(', ')} on namespace ${config.temporal.namespace}: ${r.error ?? 'refused'}`,
          );
        process.stdout.write(
          r.added.length > 0
            ? `registered ${r.added.join(', ')} on namespace ${config.temporal.namespace}\n`
            : `namespace ${config.temporal.namespace} has every search attribute already\n`,
        );
      });
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
