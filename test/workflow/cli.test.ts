/**
 * The `orchestrator` CLI as a user runs it (a real process) against the shared dev server, with a worker
 * in this test process: bad intakes never start a workflow, and a run started with --wait prints its
 * steps, checkpoints and next steps.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const ROOT = path.resolve(import.meta.dirname, '../..');
const exec = promisify(execFile);

describe('orchestrator CLI', () => {
  let t: TestEnv;
  let cliEnv: NodeJS.ProcessEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
    cliEnv = {
      ...process.env,
      // Plain output to match on: CI=true would otherwise turn picocolors on.
      NO_COLOR: '1',
      FORCE_COLOR: '0',
      ORCHESTRATOR_TASK_QUEUE: t.taskQueue,
      ORCHESTRATOR_OUTPUTS_DIR: t.config.outputsDir,
      LOG_LEVEL: 'warn',
    };
  });
  afterAll(async () => t.close());

  async function cli(
    args: string[],
    env: Record<string, string> = {},
    /** Past this the process is killed (its code is then null): a hang fails where it happens. */
    timeoutMs = 0,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await exec(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), ...args], {
        env: { ...cliEnv, ...env },
        cwd: ROOT,
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  async function runsOnQueue(): Promise<number> {
    let n = 0;
    for await (const _ of t.client.workflow.list({ query: `TaskQueue = '${t.taskQueue}'` })) n++;
    return n;
  }

  const bad: Record<string, [string, RegExp]> = {
    'malformed YAML': ['project: { name: x\nphases: [planning\n', /invalid YAML/],
    'an unknown phase preset': [
      'project: { name: x }\nphases: [planning, deployment]\n',
      /phases\[1\].*unknown phase preset "deployment"/,
    ],
    'an artifact glob that escapes the workspace': [
      'project: { name: x }\nphases:\n  - name: planning\n    agents: [{ role: a, backend: script, command: [true] }]\n    artifacts: ["../x"]\n',
      /phases\[0\]\.artifacts\[0\]: must be a relative path inside the workspace/,
    ],
    'an absolute artifact path': [
      'project: { name: x }\nphases:\n  - name: planning\n    agents: [{ role: a, backend: script, command: [true] }]\n    artifacts: ["/etc/passwd"]\n',
      /phases\[0\]\.artifacts\[0\]: must be a relative path inside the workspace/,
    ],
    'an empty phase list': ['project: { name: x }\nphases: []\n', /phases: .*at least one phase/],
  };

  for (const [what, [yaml, message]] of Object.entries(bad)) {
    it(`rejects ${what} before any workflow starts`, async () => {
      const file = path.join(tempDir('orch-intake-'), 'intake.yaml');
      fs.writeFileSync(file, yaml);
      const before = await runsOnQueue();
      const r = await cli(['run', 'start', '--intake', file, '--workspace', tempDir('orch-ws-')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(file);
      expect(r.stderr).not.toMatch(/\n\s+at /); // one clear message, no stack trace
      expect(await runsOnQueue()).toBe(before);
    });
  }

  it('run start --wait prints each step, the checkpoints and next steps; status/list/checkpoint work', async () => {
    const ws = tempDir('orch-ws-');
    const r = await cli([
      'run',
      'start',
      '--intake',
      'examples/minimal.yaml',
      '--workspace',
      ws,
      '--wait',
      '--run-id',
      `cli-${Date.now()}`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Step 1\/2 planning\s+→ CP1/);
    expect(r.stdout).toMatch(/Step 2\/2 development\s+→ CP2/);
    expect(r.stdout).toContain('Next steps');
    const runId = /run (cli-\d+)/.exec(r.stdout)?.[1];
    expect(runId).toBeDefined();
    expect(fs.readFileSync(path.join(ws, 'src/a.txt'), 'utf8')).toBe('x\n');

    const status = JSON.parse((await cli(['run', 'status', runId!, '--json'])).stdout) as {
      state: string;
      step: string;
    };
    expect(status).toMatchObject({ state: 'completed', step: 'step 2/2' });
    const cps = JSON.parse((await cli(['checkpoint', 'list', runId!, '--json'])).stdout) as { id: string }[];
    expect(cps.map((c) => c.id)).toEqual(['CP0', 'CP1', 'CP2']);
    const shown = JSON.parse((await cli(['checkpoint', 'show', runId!, 'CP2', '--json'])).stdout) as {
      manifest: { artifacts: { path: string }[] };
    };
    expect(shown.manifest.artifacts.map((a) => a.path)).toEqual(['src/a.txt']);
    const list = await cli(['run', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { runId: string }[]).some((x) => x.runId === runId)).toBe(true);
  });

  it('names the problem for bad flags and unknown runs', async () => {
    const notCp = await cli(['checkpoint', 'rollback', 'some-run', 'checkpoint-two']);
    expect(notCp.code).not.toBe(0);
    expect(notCp.stderr).toMatch(/must be a checkpoint id like CP2/);
    const missing = await cli(['run', 'status', 'no-such-run']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no run with id "no-such-run"/);
    const badAddr = await cli(['worker', '--address', 'not-an-address']);
    expect(badAddr.code).toBe(2);
    // The message names the flag the address came from (config/temporal.ts says where each setting was read).
    expect(badAddr.stderr.trim()).toBe(
      'orchestrator: --address: must be host:port, e.g. 127.0.0.1:7233 (got "not-an-address")',
    );
    const badEnv = await cli(['worker'], { TEMPORAL_ADDRESS: 'not-an-address' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr.trim()).toBe(
      'orchestrator: TEMPORAL_ADDRESS: must be host:port, e.g. 127.0.0.1:7233 (got "not-an-address")',
    );
  });

  it('a worker for a namespace the server lacks says so and exits (it used to print the error and hang)', async () => {
    const ns = `no-such-ns-${Date.now()}`;
    const started = Date.now();
    // A worker that hangs is killed after 60 s and fails here, not at the file's limit.
    const r = await cli(
      ['worker', '--namespace', ns],
      { TEMPORAL_ADDRESS: t.config.temporal.address },
      60_000,
    );
    expect(r.code, r.stderr).toBe(1);
    const address = t.config.temporal.address;
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `orchestrator: namespace "${ns}" does not exist on ${address}: create it with ` +
        `\`temporal operator namespace create --namespace ${ns} --address ${address}\`, ` +
        'or name another with --namespace or TEMPORAL_NAMESPACE',
    );
    console.log(`the worker exited ${Date.now() - started} ms after it started`);
  });
});
