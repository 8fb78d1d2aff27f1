/**
 * Vitest global setup for the `temporal` project: one real dev server (the Temporal CLI's
 * `temporal server start-dev`, located or built by scripts/ensure-temporal.sh) on a free port, and one
 * workflow bundle, shared by every test file of the run. Test files read both from the environment,
 * which forked test processes inherit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ensureTemporalCli, startDevServer, type DevServer } from '../../src/devserver';
import { WORKFLOWS_PATH } from '../../workers/worker';

let server: DevServer | undefined;

export default async function setup(): Promise<() => Promise<void>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orchestrator-test-'));
  const cliPath = await ensureTemporalCli();
  server = await startDevServer({
    cliPath,
    dbFile: path.join(dir, 'temporal.db'),
    logFile: path.join(dir, 'temporal.log'),
    headless: true,
  });
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, code);

  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.ORCH_TEST_TEMPORAL_CLI = cliPath;
  process.env.ORCH_TEST_DB_FILE = server.dbFile;
  process.env.ORCH_TEST_SERVER_PID = String(server.pid);
  process.env.ORCH_TEST_WORKFLOW_BUNDLE = bundlePath;
  process.env.ORCH_TEST_DIR = dir;

  return async () => {
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

const noop = (): void => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
