/** Shared bench plumbing: a private dev server and worker, medians, and the report line. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig, type AppConfig } from '../config/env';
import { ensureTemporalCli, startDevServer, type DevServer } from '../src/devserver';
import { createLogger } from '../src/logger';
import { installRuntimeLogger } from '../workers/runtime-logger';
import { createWorker, type OrchestratorWorker } from '../workers/worker';

export interface BenchEnv {
  dir: string;
  config: AppConfig;
  client: Client;
  worker: OrchestratorWorker;
  /** The dev server's process, for benches that sample its CPU. */
  serverPid: number;
  close(): Promise<void>;
}

export async function benchEnv(): Promise<BenchEnv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-bench-'));
  const server: DevServer = await startDevServer({
    cliPath: await ensureTemporalCli(),
    dbFile: path.join(dir, 'temporal.db'),
    logFile: path.join(dir, 'temporal.log'),
    headless: true,
  });
  const config = loadConfig({
    ...process.env,
    TEMPORAL_ADDRESS: server.address,
    ORCHESTRATOR_TASK_QUEUE: 'bench',
    ORCHESTRATOR_OUTPUTS_DIR: path.join(dir, 'outputs'),
    LOG_LEVEL: 'error',
  });
  const logger = createLogger('error');
  installRuntimeLogger(logger);
  const native = await NativeConnection.connect({ address: server.address });
  const { worker } = await createWorker({
    config,
    logger,
    connection: native,
    workerOptions: { workflowsPath: path.resolve(import.meta.dirname, 'workflows.ts') },
  });
  const running = worker.run();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  return {
    dir,
    config,
    client,
    worker,
    serverPid: server.pid,
    async close() {
      worker.shutdown();
      await running;
      await connection.close();
      await native.close();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
