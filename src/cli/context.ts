import type { Client, Connection } from '@temporalio/client';
import { type Command } from 'commander';
import { type AppConfig, loadConfig } from '../../config/env';
import { connectionOptions, type TemporalConnection } from '../../config/temporal';
import { cannotReachTemporal } from '../connection-error';
import { refusedConnection } from '../reachable';
import { readServerState } from '../devserver';
import { CLIENT_CHANNEL_ARGS } from '../client-channel';
import { createLogger, logDestination, type Logger } from '../logger';
import { WorkflowType } from '../shared/names';
import { retryRefusedQueries } from '../query-retry';

/** Global flags shared by every command (they override the matching environment variables). */
export interface GlobalFlags {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  profile?: string;
  configFile?: string;
}

/** Parses config once per command from env + global flags. Throws ConfigError on bad input. */
export function configFrom(cmd: Command, opts: { projectServer?: boolean } = {}): AppConfig {
  const flags = cmd.optsWithGlobals<GlobalFlags>();
  const config = loadConfig(process.env, {
    address: flags.address,
    namespace: flags.namespace,
    taskQueue: flags.taskQueue,
    profile: flags.profile,
    configFile: flags.configFile,
  });
  // Without an address given (flag, variable or profile), this project's own dev server (`dev`, `server
  // start`, which may have taken free ports) is the one meant: never the default port's, which may be
  // someone else's.
  if (opts.projectServer === false || config.temporal.addressSource !== 'default') return config;
  const own = readServerState(config.home);
  return own ? { ...config, temporal: { ...config.temporal, address: own.address } } : config;
}

export function loggerFor(config: AppConfig, bindings: Record<string, unknown> = {}): Logger {
  return createLogger(config.logLevel, bindings, logDestination(config.logFormat));
}

let warnedIgnoredKeys = false;

/**
 * Says once per invocation, on stderr, that the Temporal config file (profile) has keys that are ignored,
 * as the worker does in its log: envconfig ignores unknown keys (as the `temporal` CLI does), so a
 * misspelt `adress` would otherwise connect elsewhere without a word. Called by whatever connects.
 */
export function warnIgnoredProfileKeys(
  t: Pick<TemporalConnection, 'ignoredKeys' | 'profile'>,
  write: (line: string) => void = (line) => process.stderr.write(line),
): void {
  if (warnedIgnoredKeys || !t.ignoredKeys || !t.profile) return;
  warnedIgnoredKeys = true;
  write(
    `orchestrator: warning: the Temporal config file ${t.profile.file} has keys that are ignored (a misspelling?): ${t.ignoredKeys}\n`,
  );
}

/**
 * Opens a client to the configured cluster; the error names the address when nothing answers. The client
 * module is loaded here, by the commands that connect (./temporal-client).
 */
export async function connectClient(
  config: AppConfig,
): Promise<{ client: Client; close: () => Promise<void> }> {
  warnIgnoredProfileKeys(config.temporal);
  // Nothing listening there: said at once, rather than after the client's connect timeout (src/reachable).
  const refused = await refusedConnection(config.temporal.address);
  if (refused)
    throw new CliError(cannotReachTemporal(config.temporal.address, refused, config.temporal.addressSource));
  const sdk = await import('./temporal-client');
  let connection: Connection;
  try {
    connection = await sdk.Connection.connect({
      ...connectionOptions(config.temporal),
      connectTimeout: '5s',
      channelArgs: CLIENT_CHANNEL_ARGS,
    });
  } catch (err) {
    throw new CliError(cannotReachTemporal(config.temporal.address, err, config.temporal.addressSource));
  }
  return {
    client: new sdk.Client({
      connection,
      namespace: config.temporal.namespace,
      interceptors: { workflow: [retryRefusedQueries()] },
    }),
    close: () => connection.close(),
  };
}

/** A user-facing failure: printed on one line without a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Prints data as JSON (for `--json`) on stdout. */
export function printJson(data: unknown): void {
  process.stdout.write(JSON.stringify(data, null, 2) + '\n');
}

/**
 * Runs `fn` with a connected client and closes it afterwards. A run that does not exist becomes a
 * one-line error; `mapError` lets a command family (teams) translate its own errors first.
 */
export async function withClient<T>(
  cmd: Command,
  fn: (client: Client, config: AppConfig) => Promise<T>,
  mapError?: (err: unknown, config: AppConfig) => Error | undefined,
): Promise<T> {
  const config = configFrom(cmd);
  const { client, close } = await connectClient(config);
  try {
    return await fn(client, config);
  } catch (err) {
    const mapped = mapError?.(err, config);
    if (mapped) throw mapped;
    // Loaded by connectClient above.
    const { WorkflowNotFoundError } = await import('./temporal-client');
    if (err instanceof WorkflowNotFoundError) {
      throw new CliError(
        `no run with id "${err.workflowId || '?'}" in namespace ${config.temporal.namespace}`,
      );
    }
    throw err;
  } finally {
    await close();
  }
}

/** How a run-scoped command may be told its run: a positional id, `--run`, or `--workflow` (the v2 form). */
export interface RunChoice {
  /** The positional run id, when the command takes one. */
  arg?: string;
  run?: string;
  workflow?: string;
}

/** Adds `--run <id>` and its v2 alias `--workflow <id>` to a run-scoped command. */
export function runOptions(cmd: Command): Command {
  return cmd
    .option('--run <id>', 'run id (default: the most recent run)')
    .option('--workflow <id>', 'the same as --run (the v2 spelling)');
}

/**
 * The run id the user named, if any. Naming it twice with different ids is a usage error (exit 2), not
 * a guess at which one was meant.
 */
export function chosenRunId(choice: RunChoice): string | undefined {
  const named = [
    ['the run id argument', choice.arg],
    ['--run', choice.run],
    ['--workflow', choice.workflow],
  ].filter((e): e is [string, string] => e[1] !== undefined);
  const distinct = new Set(named.map(([, v]) => v));
  if (distinct.size > 1)
    throw new CliError(
      `the run is named twice with different ids: ${named.map(([k, v]) => `${k} "${v}"`).join(', ')}`,
      2,
    );
  return named[0]?.[1];
}

/** The run a run-scoped command acts on: the one named, else the most recent one. */
async function resolveRunId(client: Client, choice: RunChoice): Promise<string> {
  return chosenRunId(choice) ?? (await latestRunId(client));
}

/**
 * {@link withClient} for a run-scoped command: `fn` gets the run it acts on ({@link resolveRunId}), found
 * with the same connection.
 */
export function withRun<T>(
  cmd: Command,
  choice: RunChoice,
  fn: (client: Client, runId: string, config: AppConfig) => Promise<T>,
): Promise<T> {
  return withClient(cmd, async (client, config) => fn(client, await resolveRunId(client, choice), config));
}

/** The most recent project run, for commands whose run id is optional. */
export async function latestRunId(client: Client): Promise<string> {
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${WorkflowType.project}'` }))
    return wf.workflowId;
  throw new CliError('no runs yet: start one with `orchestrator run start --intake FILE --workspace DIR`');
}
