/**
 * Helpers for tests that run against the dev server started by global-setup.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig, type AppConfig } from '../../config/env';
import { createLogger } from '../../src/logger';
import { CLIENT_CHANNEL_ARGS } from '../../src/client-channel';
import { installRuntimeLogger } from '../../workers/runtime-logger';
import { createWorker, type CreateWorkerOptions, type OrchestratorWorker } from '../../workers/worker';
import { saveHistories } from './record';

/**
 * Log lines of tests (and of the processes they spawn) go to the test runner's console, which shows
 * them with a failing test and drops them for a passing one (vitest `silent: 'passed-only'`).
 */
export const testLogDestination = {
  write(line: string): void {
    console.error(line.trimEnd());
  },
};

/** Forwards a child process's output lines to the test runner's console (see testLogDestination). */
export function forwardOutput(stream: Readable | null): void {
  stream?.setEncoding('utf8');
  let rest = '';
  stream?.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) if (l) console.error(l);
  });
  stream?.on('end', () => rest && console.error(rest));
}

export function env(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(`${name} is not set: is this test in the "temporal" vitest project (global setup)?`);
  return v;
}

/** A fresh temp directory, removed by the caller if wanted. */
export function tempDir(prefix = 'orch-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestEnv {
  config: AppConfig;
  client: Client;
  nativeConnection: NativeConnection;
  taskQueue: string;
  /** Starts a worker on this env's unique task queue; stop it with `worker.shutdown()`. */
  startWorker(
    opts?: Partial<CreateWorkerOptions>,
  ): Promise<{ worker: OrchestratorWorker; running: Promise<void> }>;
  close(): Promise<void>;
}

/** Connects to the shared dev server with a task queue unique to the calling test file. */
export async function createTestEnv(overrides: { outputsDir?: string } = {}): Promise<TestEnv> {
  const taskQueue = `test-${randomUUID()}`;
  const outputsDir = overrides.outputsDir ?? tempDir('orch-outputs-');
  const config = loadConfig({
    ...process.env,
    ORCHESTRATOR_TASK_QUEUE: taskQueue,
    ORCHESTRATOR_OUTPUTS_DIR: outputsDir,
    ORCHESTRATOR_SHUTDOWN_GRACE_MS: '2000',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  });
  const logger = createLogger(config.logLevel, { test: true }, testLogDestination);
  // The runtime logger must be installed before the first NativeConnection creates the runtime.
  installRuntimeLogger(logger);
  const connection = await Connection.connect({
    address: config.temporal.address,
    channelArgs: CLIENT_CHANNEL_ARGS,
  });
  const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const workers: { worker: OrchestratorWorker; running: Promise<void> }[] = [];
  return {
    config,
    client,
    nativeConnection,
    taskQueue,
    async startWorker(opts = {}) {
      const { worker } = await createWorker({
        config,
        logger,
        connection: nativeConnection,
        workflowBundle: { codePath: env('ORCH_TEST_WORKFLOW_BUNDLE') },
        ...opts,
      });
      const running = worker.run();
      workers.push({ worker, running });
      return { worker, running };
    },
    async close() {
      for (const { worker } of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
      await Promise.allSettled(workers.map((w) => w.running));
      const recordTo = process.env.ORCH_RECORD_HISTORIES;
      if (recordTo) await saveHistories(client, taskQueue, recordTo);
      await connection.close();
      await nativeConnection.close();
    },
  };
}

const BIN = path.resolve(import.meta.dirname, '../../bin/orchestrator.js');

/**
 * `orchestrator worker` as its own process on this env's server, task queue and outputs: the crash tests
 * SIGKILL it. `env` adds to (or overrides) that, e.g. the model server's URL.
 */
export function spawnWorkerProcess(
  t: TestEnv,
  env: Record<string, string> = {},
  /** A command the worker runs under (it must exec the rest, so that the child's pid is the worker's). */
  prefix: string[] = [],
): ChildProcess {
  const [cmd, ...args] = [...prefix, process.execPath, BIN, 'worker'];
  const child = spawn(cmd, args, {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: t.config.temporal.address,
      ORCHESTRATOR_TASK_QUEUE: t.taskQueue,
      ORCHESTRATOR_OUTPUTS_DIR: t.config.outputsDir,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  forwardOutput(child.stdout);
  forwardOutput(child.stderr);
  return child;
}

/**
 * A command prefix (for {@link spawnWorkerProcess}) under which a worker sees the folder `disk` at the
 * path `shared`: a mount namespace of its own with `disk` bound there. Two workers on two disks are two
 * hosts whose workspaces have the same path but their own files, as two machines have. unshare execs sh,
 * which execs the worker: the child's pid is the worker's.
 */
export function onDisk(disk: string, shared: string): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$1" "$2" && shift 2 && exec "$@"',
    'host',
    disk,
    shared,
  ];
}

/** Ends the worker processes still running (SIGTERM, a graceful shutdown) and waits for each to exit. */
export async function stopWorkers(workers: readonly ChildProcess[]): Promise<void> {
  for (const w of workers) {
    if (w.exitCode !== null || w.signalCode !== null) continue;
    const exited = new Promise((r) => w.once('exit', r));
    w.kill('SIGTERM');
    await exited;
  }
}

/**
 * Resolves once a worker process (by pid) polls this env's task queue for workflow tasks: the moment
 * "the worker is back" in crash tests. Identity is the SDK default `<pid>@<host>`.
 */
export async function waitUntilPolling(t: TestEnv, pid: number, timeoutMs = 180_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await t.client.workflowService.describeTaskQueue({
      namespace: t.config.temporal.namespace,
      taskQueue: { name: t.taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
    });
    if ((res.pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`))) return Date.now();
    if (Date.now() > deadline)
      throw new Error(`worker ${pid} did not poll ${t.taskQueue} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
