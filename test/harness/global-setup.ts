/**
 * Vitest global setup for the `temporal` project: one real dev server (the Temporal CLI's
 * `temporal server start-dev`, located or built by scripts/ensure-temporal.sh) on a free port, and one
 * workflow bundle (the build step's, rebuilt here when a workflow changed), shared by every test file.
 * Test files read both from the environment, which forked test processes inherit. The compiled CLI is
 * brought up to date here too, once, rather than by the first of many parallel CLI runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTemporalCli, startDevServer, type DevServer } from '../../src/devserver';
import { createLogger } from '../../src/logger';
import { loadWorkflowBundle } from '../../workers/bundle';
import { ensureCli } from '../../scripts/build-lib.mjs';

let server: DevServer | undefined;

export default async function setup(): Promise<() => Promise<void>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orchestrator-test-'));
  const cliPath = await ensureTemporalCli();
  const [started, { codePath: bundlePath }] = await Promise.all([
    startDevServer({
      cliPath,
      dbFile: path.join(dir, 'temporal.db'),
      logFile: path.join(dir, 'temporal.log'),
      // The Web UI is served too: test/workflow/web-ui.test.ts reads runs through it, as an operator does.
      headless: false,
      // Every server write (a start, a signal, a task completed, a heartbeat) was a transaction that
      // waited on fsync: 46-67 ms a signal on this shared disk, against 13-20 ms without the sync
      // (docs/performance-log.md). A throwaway store, removed after the run; no test kills this server.
      sqlitePragmas: ['journal_mode=wal', 'synchronous=off'],
    }),
    loadWorkflowBundle(createLogger('warn')),
    ensureCli(),
  ]);
  server = started;

  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.ORCH_TEST_TEMPORAL_CLI = cliPath;
  process.env.ORCH_TEST_UI_URL = server.uiUrl ?? '';
  process.env.ORCH_TEST_DB_FILE = server.dbFile;
  process.env.ORCH_TEST_SERVER_PID = String(server.pid);
  process.env.ORCH_TEST_WORKFLOW_BUNDLE = bundlePath;
  process.env.ORCH_TEST_DIR = dir;
  // Script agents run sandboxed; the one folder outside their workspace they may write is this control
  // folder, where test/harness/gates.ts paces them.
  const control = path.join(dir, 'control');
  fs.mkdirSync(control);
  process.env.ORCHESTRATOR_SANDBOX_WRITABLE = control;

  return async () => {
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
