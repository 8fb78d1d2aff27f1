/**
 * Process configuration, parsed once from the environment (and CLI flag overrides) and injected into
 * workers, activities and the CLI. Workflows never read env: whatever they need arrives in their input.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_TASK_QUEUE } from '../src/shared/names';
import { capacityFor, thisMachine, type Machine } from './capacity';
import { ConfigError } from './errors';
import { registerSecret } from '../src/redact';
import { resolveTemporal, type TemporalConnection } from './temporal';

/** A host id: safe in a task queue name and a file name. */
const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The default host id: this machine's hostname, with anything a host id may not hold replaced. */
export function defaultHostId(hostname = os.hostname()): string {
  const safe = hostname
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  return safe || 'host';
}

/** Read by {@link resolveTemporal} (Temporal's envconfig), listed here so deployments are checked against them. */
const temporalSetting = z.string().optional();

const EnvSchema = z.object({
  TEMPORAL_ADDRESS: temporalSetting,
  TEMPORAL_NAMESPACE: temporalSetting,
  TEMPORAL_CONFIG_FILE: temporalSetting,
  TEMPORAL_PROFILE: temporalSetting,
  TEMPORAL_API_KEY: temporalSetting,
  TEMPORAL_TLS: temporalSetting,
  TEMPORAL_TLS_CLIENT_CERT_PATH: temporalSetting,
  TEMPORAL_TLS_CLIENT_CERT_DATA: temporalSetting,
  TEMPORAL_TLS_CLIENT_KEY_PATH: temporalSetting,
  TEMPORAL_TLS_CLIENT_KEY_DATA: temporalSetting,
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: temporalSetting,
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: temporalSetting,
  TEMPORAL_TLS_SERVER_NAME: temporalSetting,
  ORCHESTRATOR_TASK_QUEUE: z.string().min(1, 'must not be empty').default(DEFAULT_TASK_QUEUE),
  ORCHESTRATOR_HOME: z.string().optional(),
  ORCHESTRATOR_OUTPUTS_DIR: z.string().optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** `auto`: readable lines on a terminal, JSON otherwise (files, pipes, log collectors). */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  CLAUDE_PATH: z.string().min(1).optional(),
  /** HOME for agent processes (Claude Code keeps sessions under $HOME/.claude); default: the worker's. */
  ORCHESTRATOR_AGENT_HOME: z.string().optional(),
  ANTHROPIC_API_KEY: z.string().optional(),
  ANTHROPIC_BASE_URL: z.url('must be a URL, e.g. http://127.0.0.1:8787').optional(),
  /** Short steps at once (task queue `<queue>`); default from the machine's cores (config/capacity). */
  ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES: z.coerce
    .number()
    .int('must be a whole number')
    .positive('must be positive')
    .optional(),
  /** Agent turns at once (task queue `<queue>-agents`); default from the machine's memory. */
  ORCHESTRATOR_MAX_CONCURRENT_AGENTS: z.coerce
    .number()
    .int('must be a whole number')
    .positive('must be positive')
    .optional(),
  /** Workflow executions the worker keeps cached; default from the machine's cores (config/capacity). */
  ORCHESTRATOR_MAX_CACHED_WORKFLOWS: z.coerce
    .number()
    .int('must be a whole number')
    .min(2, 'must be at least 2')
    .optional(),
  ORCHESTRATOR_SHUTDOWN_GRACE_MS: z.coerce.number().int().nonnegative().default(10_000),
  /** Port of the worker's Prometheus `/metrics` endpoint; unset: no endpoint. */
  ORCHESTRATOR_METRICS_PORT: z.coerce
    .number()
    .int('must be a whole number')
    .min(1, 'must be a port, 1-65535')
    .max(65535, 'must be a port, 1-65535')
    .optional(),
  /** Interface the metrics endpoint binds; loopback unless asked, as the endpoint has no auth. */
  ORCHESTRATOR_METRICS_ADDRESS: z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[0-9a-fA-F:.]+)$/, 'must be an IP address, e.g. 127.0.0.1 or 0.0.0.0')
    .default('127.0.0.1'),
  /** OpenTelemetry's standard OTLP/HTTP base URL (`<url>/v1/traces` receives spans); unset: no tracing. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url('must be a URL, e.g. http://127.0.0.1:4318').optional(),
  /** The traces endpoint itself, used as given (OpenTelemetry's standard; wins over the base URL). */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url('must be a URL, e.g. http://127.0.0.1:4318/v1/traces').optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('orchestrator-worker'),
  /**
   * This worker's host: it also polls `<queue>-host-<id>` (and `…-agents`) for the workspace steps of the
   * runs placed on it (src/shared/names hostTaskQueue). Default: the machine's hostname, made safe.
   */
  ORCHESTRATOR_HOST_ID: z
    .string()
    .regex(HOST_ID, 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit')
    .optional(),
  /**
   * A folder every host reaches (NFS, a shared volume): each checkpoint is pushed there, and a run moved off
   * a lost host restores its last checkpoint from it. Unset: checkpoints stay on their host only.
   */
  ORCHESTRATOR_CHECKPOINT_STORE: z.string().startsWith('/', 'must be an absolute path').optional(),
  /**
   * Seconds a run's host may stay away (no worker takes its workspace steps) before the run moves to
   * another host: the ScheduleToStart timeout of every host-queue activity. Must exceed the longest time
   * a workspace step or agent turn waits for room on a busy but live host.
   */
  ORCHESTRATOR_HOST_MOVE_AFTER_S: z.coerce
    .number()
    .int('must be a whole number of seconds')
    .positive('must be positive')
    .default(300),
});

/** Everything the processes of this project are configured with. */
export interface AppConfig {
  /**
   * The cluster: address, namespace, API key and TLS as the `temporal` CLI resolves them (config/temporal),
   * and our task queue. Holds secrets: log it only through describeConnection.
   */
  temporal: TemporalConnection & { taskQueue: string };
  /** Project state root (server database, pid files); default `<cwd>/.orchestrator`. */
  home: string;
  /** Root for run outputs (`<outputsDir>/<runId>/…`); default `<cwd>/outputs`. */
  outputsDir: string;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  logFormat: z.infer<typeof EnvSchema>['LOG_FORMAT'];
  claudePath: string;
  /** HOME given to agent processes, when set (rehearsal isolates sessions this way). */
  agentHome?: string;
  anthropic: { apiKey?: string; baseURL?: string };
  worker: {
    /** Short steps at once, on the task queue itself. */
    maxConcurrentActivities: number;
    /** Agent turns at once, on `<queue>-agents` (src/shared/names agentTaskQueue). */
    maxConcurrentAgents: number;
    /** Workflow executions kept in the worker's cache (the SDK's `maxCachedWorkflows`). */
    maxCachedWorkflows: number;
    shutdownGraceMs: number;
  };
  /** Prometheus endpoint (`host:port`, scraped at `/metrics`), when ORCHESTRATOR_METRICS_PORT is set. */
  metrics?: { bindAddress: string };
  /**
   * OpenTelemetry traces (workflows, phases, activities, model calls) sent as OTLP/HTTP JSON to
   * `tracesUrl`, when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Unset: the
   * worker loads none of the tracing code and runs the untraced workflow bundle.
   */
  tracing?: { tracesUrl: string; serviceName: string };
  /**
   * Where this worker's runs keep their workspaces (README "Many hosts"): its host id (the suffix of the
   * host task queue it polls), how long a host may be gone before its runs move, and the checkpoint store
   * every host reaches, when there is one.
   */
  host: { id: string; moveAfterMs: number; checkpointStore?: string };
}

/** Flag overrides; each maps onto the environment variable of the same meaning. */
export interface ConfigOverrides {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  /** `--profile` (TEMPORAL_PROFILE): the temporal.toml profile. */
  profile?: string;
  /** `--config-file` (TEMPORAL_CONFIG_FILE): the temporal.toml to read. */
  configFile?: string;
}

/**
 * Parses configuration. Throws {@link ConfigError} with a one-line message naming the variable,
 * e.g. `TEMPORAL_ADDRESS: must be host:port, e.g. 127.0.0.1:7233 (got "not-an-address")`.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: ConfigOverrides = {},
  cwd = process.cwd(),
  /** What the default capacity is sized from (tests pass a machine of their own). */
  machine: Machine = thisMachine(),
): AppConfig {
  const merged: Record<string, string | undefined> = { ...env };
  if (overrides.taskQueue !== undefined) merged.ORCHESTRATOR_TASK_QUEUE = overrides.taskQueue;
  // Empty strings in env mean "unset" for optional values, as shells commonly export them.
  for (const k of Object.keys(merged)) if (merged[k] === '') delete merged[k];

  const parsed = EnvSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const got = merged[name];
    const shown = name.includes('KEY') ? '' : got !== undefined ? ` (got ${JSON.stringify(got)})` : '';
    throw new ConfigError(`${name}: ${issue?.message ?? 'invalid'}${shown}`);
  }
  const e = parsed.data;
  const temporal = resolveTemporal(merged, overrides);
  // Secrets given by a file rather than the environment are redacted all the same.
  registerSecret(temporal.apiKey);
  registerSecret(temporal.tls?.clientCertPair?.key.toString('utf8'));
  const sized = capacityFor(machine);
  const home = path.resolve(cwd, e.ORCHESTRATOR_HOME ?? '.orchestrator');
  return {
    temporal: { ...temporal, taskQueue: e.ORCHESTRATOR_TASK_QUEUE },
    home,
    outputsDir: path.resolve(cwd, e.ORCHESTRATOR_OUTPUTS_DIR ?? 'outputs'),
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    claudePath: e.CLAUDE_PATH ?? defaultClaudePath(),
    agentHome: e.ORCHESTRATOR_AGENT_HOME ? path.resolve(cwd, e.ORCHESTRATOR_AGENT_HOME) : undefined,
    anthropic: { apiKey: e.ANTHROPIC_API_KEY, baseURL: e.ANTHROPIC_BASE_URL },
    worker: {
      maxConcurrentActivities: e.ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES ?? sized.shortSteps,
      maxConcurrentAgents: e.ORCHESTRATOR_MAX_CONCURRENT_AGENTS ?? sized.agentTurns,
      maxCachedWorkflows: e.ORCHESTRATOR_MAX_CACHED_WORKFLOWS ?? sized.cachedWorkflows,
      shutdownGraceMs: e.ORCHESTRATOR_SHUTDOWN_GRACE_MS,
    },
    ...(e.ORCHESTRATOR_METRICS_PORT !== undefined
      ? { metrics: { bindAddress: bindAddress(e.ORCHESTRATOR_METRICS_ADDRESS, e.ORCHESTRATOR_METRICS_PORT) } }
      : {}),
    ...tracingConfig(e),
    host: {
      id: e.ORCHESTRATOR_HOST_ID ?? defaultHostId(),
      moveAfterMs: e.ORCHESTRATOR_HOST_MOVE_AFTER_S * 1000,
      ...(e.ORCHESTRATOR_CHECKPOINT_STORE ? { checkpointStore: e.ORCHESTRATOR_CHECKPOINT_STORE } : {}),
    },
  };
}

/** OpenTelemetry's rule: the traces endpoint as given, else `<base>/v1/traces`. */
function tracingConfig(e: z.infer<typeof EnvSchema>): Pick<AppConfig, 'tracing'> {
  const base = e.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesUrl =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  return tracesUrl ? { tracing: { tracesUrl, serviceName: e.OTEL_SERVICE_NAME } } : {};
}

/** `host:port`, bracketing a bare IPv6 address as socket addresses require. */
function bindAddress(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

const REPO_CLAUDE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../node_modules/.bin/claude');

/**
 * `claude` from PATH when it is there, else the copy this project installs as a dev dependency, so that
 * `make demo` and the tests work without a global install.
 */
function defaultClaudePath(): string {
  const onPath = (process.env.PATH ?? '')
    .split(path.delimiter)
    .some((dir) => dir && fs.existsSync(path.join(dir, 'claude')));
  return onPath || !fs.existsSync(REPO_CLAUDE) ? 'claude' : REPO_CLAUDE;
}

/**
 * The environment variables {@link loadConfig} reads, for deployment files to be checked against
 * (test/unit/compose.test.ts: a worker given a misspelt variable would silently run on the default).
 */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(EnvSchema.shape);
