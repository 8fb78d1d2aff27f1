/**
 * Vitest global setup for the `cluster` project (`make test-cluster`): the full Temporal server on a
 * throwaway PostgreSQL cluster (scripts/cluster.sh), instead of the dev server of the `temporal` project.
 * Its folder is under the repository's .orchestrator/ (PostgreSQL runs as the `postgres` user, which must
 * reach it); it is stopped and removed afterwards. Test files read the address from the environment.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../src/logger';
import { loadWorkflowBundle } from '../../workers/bundle';
import { ensureCli, ROOT } from '../../scripts/build-lib.mjs';

const run = promisify(execFile);
const SCRIPT = path.join(ROOT, 'scripts', 'cluster.sh');

export default async function setup(): Promise<() => Promise<void>> {
  const base = path.join(ROOT, '.orchestrator');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'cluster-'));
  const stop = async () => {
    await run(SCRIPT, ['stop', dir]).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  let address: string | undefined;
  try {
    const [started, { codePath: bundlePath }] = await Promise.all([
      // Building the server the first time takes minutes; starting it, seconds.
      run(SCRIPT, ['start', dir], { timeout: 3_600_000, maxBuffer: 1 << 24 }),
      loadWorkflowBundle(createLogger('warn')),
      ensureCli(),
    ]);
    address = /^TEMPORAL_ADDRESS=(\S+)$/m.exec(started.stdout)?.[1];
    if (!address) throw new Error(`scripts/cluster.sh start printed no address:\n${started.stderr}`);
    process.env.ORCH_TEST_WORKFLOW_BUNDLE = bundlePath;
  } catch (err) {
    await stop();
    throw err;
  }
  process.env.TEMPORAL_ADDRESS = address;
  process.env.ORCH_TEST_DIR = dir;
  process.env.ORCH_TEST_CLUSTER_DIR = dir;
  const control = path.join(dir, 'control');
  fs.mkdirSync(control);
  process.env.ORCHESTRATOR_SANDBOX_WRITABLE = control;
  return stop;
}
