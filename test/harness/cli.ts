/** Runs the real `orchestrator` CLI (bin/orchestrator.js) as a subprocess, as a user would. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { TestEnv } from './temporal';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node bin/orchestrator.js ...args`; never rejects (the exit code is in the result). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/orchestrator.js'), ...args],
      { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', NO_COLOR: '1', ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The environment that points the CLI at a test env's server, task queue and outputs. */
export function cliEnv(t: TestEnv): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: t.config.temporal.address,
    ORCHESTRATOR_TASK_QUEUE: t.taskQueue,
    ORCHESTRATOR_OUTPUTS_DIR: t.config.outputsDir,
  };
}
