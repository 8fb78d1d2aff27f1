/**
 * Records workflow histories from real runs on a real dev server into test/replay/histories/, for the
 * replay tests that catch non-deterministic workflow changes. Re-run after an intentional, patched change:
 *   npx tsx scripts/record-histories.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../config/env';
import { ensureTemporalCli, startDevServer } from '../src/devserver';
import { createLogger } from '../src/logger';
import { rollbackRun, startRun } from '../src/runs';
import { installRuntimeLogger } from '../workers/runtime-logger';
import { createWorker } from '../workers/worker';
import { Gates, waitFor } from '../test/harness/gates';
import { sixPhaseSpec } from '../test/harness/specs';

const OUT = path.resolve(import.meta.dirname, '../test/replay/histories');

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-record-'));
  const cliPath = await ensureTemporalCli();
  const server = await startDevServer({
    cliPath,
    dbFile: path.join(dir, 'db'),
    logFile: path.join(dir, 'log'),
    headless: true,
  });
  const config = loadConfig({
    ...process.env,
    TEMPORAL_ADDRESS: server.address,
    ORCHESTRATOR_TASK_QUEUE: 'record',
    ORCHESTRATOR_OUTPUTS_DIR: path.join(dir, 'outputs'),
    LOG_LEVEL: 'warn',
  });
  const logger = createLogger('warn');
  installRuntimeLogger(logger);
  const native = await NativeConnection.connect({ address: server.address });
  const { worker } = await createWorker({ config, logger, connection: native });
  const running = worker.run();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const save = async (workflowId: string, name: string) => {
    // The Temporal CLI's JSON is the format `temporal workflow show` users already have.
    const { stdout } = await promisify(execFile)(
      cliPath,
      ['workflow', 'show', '--address', server.address, '--workflow-id', workflowId, '--output', 'json'],
      { maxBuffer: 64 << 20 },
    );
    fs.writeFileSync(path.join(OUT, `${name}.json`), stdout);
    process.stdout.write(
      `recorded ${name} (${(JSON.parse(stdout) as { events: unknown[] }).events.length} events)\n`,
    );
  };
  try {
    fs.mkdirSync(OUT, { recursive: true });
    const full = await startRun(client, {
      spec: sixPhaseSpec(new Gates(path.join(dir, 'g1'))),
      workspace: path.join(dir, 'ws1'),
      outputsDir: config.outputsDir,
      taskQueue: 'record',
      runId: 'replay-full',
    });
    await client.workflow.getHandle(full.runId).result();
    await save(full.runId, 'project-full');
    await save(`${full.runId}/planning/architect`, 'agent-script');

    const gates = new Gates(path.join(dir, 'g2'));
    const rb = await startRun(client, {
      spec: sixPhaseSpec(gates, ['development']),
      workspace: path.join(dir, 'ws2'),
      outputsDir: config.outputsDir,
      taskQueue: 'record',
      runId: 'replay-rollback',
    });
    await waitFor(() => gates.count('development') === 1, 'phase 4 running');
    await rollbackRun(client, rb.runId, 'CP2', 'recorded rollback');
    gates.open('development', 2);
    await client.workflow.getHandle(rb.runId).result();
    await save(rb.runId, 'project-rollback');
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await native.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
