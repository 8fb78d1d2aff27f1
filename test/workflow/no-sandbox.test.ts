/**
 * Where no sandbox works (forced here with `ORCHESTRATOR_SANDBOX=off`, as on a host without bubblewrap):
 * the worker says so in one line at start, `run status` says so for the run, agents still get the
 * scrubbed environment and their workspace as working directory, and `run_command` refuses commands that
 * name a path outside the workspace, so nothing appears outside it. On the real dev server, with a real
 * `orchestrator worker` process, the real CLI and the local model server.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { cliEnv, runCli } from '../harness/cli';
import {
  createTestEnv,
  spawnWorkerProcess,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

/** In the worker's environment: no agent may see it (the allow-list keeps it out). */
const PROBE = 'NOSANDBOX_PROBE_VALUE_7f3a';
const NOTICE = 'sandbox: NONE (ORCHESTRATOR_SANDBOX=off)';

let t: TestEnv;
let server: ModelServer;
let worker: ChildProcess;
const workerOutput: string[] = [];

beforeAll(async () => {
  server = await startModelServer();
  t = await createTestEnv();
  worker = spawnWorkerProcess(t, {
    ORCHESTRATOR_SANDBOX: 'off',
    ANTHROPIC_BASE_URL: server.url,
    ANTHROPIC_API_KEY: 'sk-test-not-a-secret',
    ORCH_NOSANDBOX_PROBE: PROBE,
  });
  for (const s of [worker.stdout, worker.stderr])
    s?.on('data', (c: Buffer | string) => workerOutput.push(String(c)));
  await waitUntilPolling(t, worker.pid!);
}, 300_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (worker.exitCode === null) worker.kill('SIGKILL');
  }
  await t?.close();
  await server?.close();
});

describe('without a sandbox', () => {
  it('the worker and run status say so in one line; agents get the scrubbed environment, their workspace, and run_command refuses paths outside it', async () => {
    const lines = workerOutput.join('').split('\n');
    const notices = lines.filter((l) => l.includes('sandbox: NONE'));
    expect(notices, lines.join('\n')).toHaveLength(1);
    expect(notices[0]).toContain(NOTICE);

    const root = tempDir('orch-nosandbox-');
    const ws = path.join(root, 'ws');
    const other = path.join(root, 'other-run');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'theirs.txt'), 'another run\n');
    const tag = `nsb${Date.now()}`;
    const attempts = [
      `echo a > ../${tag}-up.txt`,
      `echo b > /tmp/${tag}-tmp.txt`,
      `echo c > ${other}/${tag}-other.txt`,
      `cat /etc/passwd > ${tag}-passwd.txt`,
    ];
    const intake = path.join(root, 'intake.yaml');
    fs.writeFileSync(
      intake,
      [
        'project: { name: no sandbox }',
        'phases:',
        '  - name: development',
        '    agents:',
        '      - id: scripter',
        '        role: developer',
        '        backend: script',
        `        command: [sh, -c, ${JSON.stringify('env; echo "key=${ANTHROPIC_API_KEY:-unset}"; echo "cwd=$(pwd)"')}]`,
        '      - id: tooluser',
        // Not `developer`: that preset's allowed_tools name claude's tools, which leaves an api agent none.
        '        role: escapist',
        '        backend: api',
        `        prompt: ${JSON.stringify(['Try things.', ...attempts.map((a) => `@bash ${a}`), '@write ok.txt done'].join('\n'))}`,
        '    artifacts: []',
      ].join('\n'),
    );
    const runId = `nosandbox-${Math.random().toString(36).slice(2, 8)}`;
    const started = await runCli(
      ['run', 'start', '--intake', intake, '--workspace', ws, '--run-id', runId, '--wait'],
      // The preflight checks the key the api agent will use (the worker's, in fact).
      { ...cliEnv(t), ANTHROPIC_API_KEY: 'sk-test-not-a-secret', ANTHROPIC_BASE_URL: server.url },
      600_000,
    );
    expect(started.code, `${started.stdout}\n${started.stderr}`).toBe(0);

    const status = await runCli(['run', 'status', runId], cliEnv(t), 300_000);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(NOTICE);
    expect(status.stdout).not.toContain('probed on this host');

    // The script ran in its workspace with the allow-listed environment only.
    const log = fs.readFileSync(
      path.join(t.config.outputsDir, runId, 'agents', 'development-scripter.log'),
      'utf8',
    );
    expect(log).toContain(`cwd=${ws}`);
    expect(log).toContain('key=unset');
    expect(log).not.toContain(PROBE);

    // Each escape was refused before it ran, and the model saw why; nothing appeared outside.
    const transcript = fs.readFileSync(
      path.join(t.config.outputsDir, runId, 'agents', 'development-tooluser.jsonl'),
      'utf8',
    );
    for (const named of ['../', '/tmp/', `${other}/`, '/etc/passwd'])
      expect(transcript).toContain(`run_command may not name a path outside the workspace: \\"${named}`);
    expect(fs.readFileSync(path.join(ws, 'ok.txt'), 'utf8')).toBe('done');
    expect(fs.readdirSync(root).sort()).toEqual(['intake.yaml', 'other-run', 'ws']);
    expect(fs.readdirSync(other)).toEqual(['theirs.txt']);
    expect(fs.readdirSync('/tmp').filter((f) => f.includes(tag))).toEqual([]);
    expect(fs.existsSync(path.join(ws, `${tag}-passwd.txt`))).toBe(false);
  }, 900_000);
});
