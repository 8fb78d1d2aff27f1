/**
 * `orchestrator dev` never joins someone else's server: with port 7233 taken it starts its own on free
 * ports, records them, and later commands of the project talk to it; when its server's process dies, it
 * says so with the reason and exits non-zero.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../harness/gates';
import { env as testEnv, tempDir } from '../harness/temporal';
import { freePort, startDevServer } from '../../src/devserver';

const BIN = path.resolve(import.meta.dirname, '../../bin/orchestrator.js');

/** Holds 127.0.0.1:`port` for the test (something else may hold it already: taken either way). */
async function occupy(port: number): Promise<net.Server | undefined> {
  const srv = net.createServer((s) => s.destroy());
  return new Promise((resolve) => {
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

describe('orchestrator dev', () => {
  it('with 7233 taken, starts on free ports that later commands find; a killed server is reported', async () => {
    const holder = await occupy(7233);
    if (holder) cleanup.push(() => new Promise((r) => holder.close(r)));
    const project = tempDir('orch-devproj-');
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? project,
      LOG_LEVEL: 'warn',
      NO_COLOR: '1',
      ORCHESTRATOR_TASK_QUEUE: `devtest-${Date.now()}`,
    };
    const dev = execa(process.execPath, [BIN, 'dev'], {
      cwd: project,
      env,
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
    });
    cleanup.push(() => dev.kill('SIGKILL'));
    let stderr = '';
    dev.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));

    await waitFor(() => /Temporal dev server at 127\.0\.0\.1:(\d+)/.test(stderr), 'the dev server', 180_000);
    expect(stderr).toContain(
      "port 7233 is taken (another Temporal server?); starting this project's dev server on free ports instead",
    );
    const port = Number(/Temporal dev server at 127\.0\.0\.1:(\d+)/.exec(stderr)![1]);
    expect(port).not.toBe(7233);
    const state = JSON.parse(fs.readFileSync(path.join(project, '.orchestrator', 'server.json'), 'utf8')) as {
      pid: number;
      address: string;
    };
    expect(state.address).toBe(`127.0.0.1:${port}`);

    // A later command of the project, with no address given, talks to this server (not to 7233).
    const list = await execa(process.execPath, [BIN, 'run', 'list', '--json'], {
      cwd: project,
      env,
      extendEnv: false,
      reject: false,
    });
    expect(list.stderr).toBe('');
    expect(list.exitCode).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([]);

    process.kill(state.pid, 'SIGKILL');
    const ended = await dev;
    expect(ended.exitCode).toBe(1);
    expect(stderr).toMatch(
      new RegExp(`orchestrator: the Temporal dev server \\(pid ${state.pid}\\) killed by SIGKILL`),
    );
    expect(fs.existsSync(path.join(project, '.orchestrator', 'server.json'))).toBe(false);
  });

  it('a start that finds its port taken for a moment tries again instead of failing the caller', async () => {
    // What a busy machine does to a chosen port between choosing and binding it (seen once in CI).
    const port = await freePort();
    const holder = await occupy(port);
    expect(holder).toBeDefined();
    const released = new Promise<void>((r) => setTimeout(() => holder!.close(() => r()), 1_500));
    const dir = tempDir('orch-clash-');
    const logFile = path.join(dir, 'server.log');
    const server = await startDevServer({
      cliPath: testEnv('ORCH_TEST_TEMPORAL_CLI'),
      dbFile: path.join(dir, 'temporal.db'),
      port,
      headless: true,
      logFile,
    });
    cleanup.push(() => server.stop());
    await released;
    expect(server.address).toBe(`127.0.0.1:${port}`);
    // The first attempt really did meet the taken port (otherwise this test proves nothing).
    expect(fs.readFileSync(logFile, 'utf8')).toMatch(/address already in use/i);
  });
});
