/**
 * The watchdog that bounds an orphaned agent's life (activities/watchdog): it ends the process group
 * and every marked process when its lease goes stale or its worker dies, and otherwise stays out of the way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  findMarkedProcesses,
  Lease,
  leaseDir,
  leaseFile,
  LEASE_STALE_S,
  ORPHAN_BOUND_MS,
  watchedCommand,
} from '../../activities/watchdog';
import { signalGroup } from '../../activities/process-group';
import { waitFor } from '../harness/gates';

const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) signalGroup(c.pid, 'SIGKILL');
});

function leasePath(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'orch-wd-')), 'x.lease');
}

function run(argv: [string, string[]], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(argv[0], argv[1], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(opts.env ? { env: opts.env } : {}),
  });
  started.push(child);
  child.stdin.end(opts.stdin ?? '');
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

describe('watchdog', () => {
  it("passes stdin through, exits with the command's code, and marks only the command", async () => {
    const lease = new Lease(leasePath());
    const mark = `wd-${process.pid}-a`;
    const r = run(
      watchedCommand(['sh', '-c', 'cat; echo "mark=$ORCHESTRATOR_AGENT_MARK"; exit 7'], {
        leaseFile: lease.file,
        mark,
      }),
      { stdin: 'the prompt\n' },
    );
    expect(await r.exited).toBe(7);
    expect(r.out()).toBe(`the prompt\nmark=${mark}\n`);
    lease.release();
  });

  // Every agent has a watchdog: with 100 agents, its `$(stat)` and `$(date)` each second were 200 process
  // starts a second on the worker's cores (issue #16's fleet). Its look at the lease is the shell's alone.
  it('looks at its lease without starting a process: one `sleep` a second, nothing else', async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-wd-bin-'));
    const log = path.join(bin, 'started.log');
    // Stand-ins first on PATH, which note each start and run the real program.
    for (const name of ['stat', 'date', 'sleep', 'touch', 'find', 'test']) {
      const real = ['/usr/bin', '/bin'].map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
      if (!real) continue;
      fs.writeFileSync(path.join(bin, name), `#!/bin/sh\necho ${name} >> '${log}'\nexec ${real} "$@"\n`, {
        mode: 0o755,
      });
    }
    const lease = new Lease(leasePath());
    const renew = setInterval(() => lease.renew(), 500);
    try {
      const r = run(
        watchedCommand(['/bin/sh', '-c', 'exec /bin/sleep 4.5'], {
          leaseFile: lease.file,
          mark: `wd-${process.pid}-s`,
        }),
        { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` } },
      );
      expect(await r.exited).toBe(0);
      expect(r.err()).toBe('');
      const starts = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
      // About one `sleep` a second of the 4.5 s, and no other program.
      expect(starts.filter((p) => p !== 'sleep')).toEqual([]);
      expect(starts.length).toBeGreaterThanOrEqual(3);
      expect(starts.length).toBeLessThanOrEqual(6);
    } finally {
      clearInterval(renew);
      lease.release();
    }
    expect(fs.existsSync(`${lease.file}.seen`)).toBe(false);
  });

  it('ends the group and marked processes outside it once the lease goes stale', async () => {
    const lease = new Lease(leasePath());
    const mark = `wd-${process.pid}-b`;
    const r = run(
      watchedCommand(['sh', '-c', 'setsid sleep 301 & sleep 302'], { leaseFile: lease.file, mark }),
    );
    await waitFor(async () => (await findMarkedProcesses(mark)).length >= 2, 'both sleeps running', 10_000);
    const t0 = Date.now();
    // Nobody renews the lease from here on (a frozen worker).
    await r.exited;
    await waitFor(
      async () => (await findMarkedProcesses(mark)).length === 0,
      'marked processes gone',
      15_000,
    );
    const took = Date.now() - t0;
    expect(took).toBeLessThanOrEqual(ORPHAN_BOUND_MS);
    expect(took).toBeGreaterThanOrEqual((LEASE_STALE_S - 1) * 1000);
    expect(r.err()).toContain('is stale');
  });

  it('ends the group within seconds when the worker that started it dies', async () => {
    const lease = new Lease(leasePath());
    const mark = `wd-${process.pid}-c`;
    const worker = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const [file, args] = watchedCommand(['sh', '-c', 'sleep 303'], { leaseFile: lease.file, mark });
    args[5] = String(worker.pid); // the parent the watchdog watches
    const r = run([file, args]);
    const renew = setInterval(() => lease.renew(), 500);
    try {
      await waitFor(async () => (await findMarkedProcesses(mark)).length >= 1, 'sleep running', 10_000);
      worker.kill('SIGKILL');
      const t0 = Date.now();
      await r.exited;
      expect(Date.now() - t0).toBeLessThan(ORPHAN_BOUND_MS);
      expect(r.err()).toContain('is gone');
      expect(await findMarkedProcesses(mark)).toEqual([]);
    } finally {
      clearInterval(renew);
    }
  });

  it('ends the group when the dead worker was also the reader of its output pipes', async () => {
    // The real case: the worker holds the other end of the watchdog's stdout and stderr, so when it
    // dies the watchdog's own report about it meets a broken pipe (SIGPIPE) and must not stop it.
    const lease = new Lease(leasePath());
    const mark = `wd-${process.pid}-d`;
    const [file, args] = watchedCommand(['sh', '-c', 'sleep 304'], { leaseFile: lease.file, mark });
    const workerCode = `
      const { spawn } = require('node:child_process');
      const [file, args] = JSON.parse(process.argv[1]);
      args[5] = String(process.pid);
      const c = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout.resume();
      c.stderr.resume();
      setInterval(() => {}, 1000);`;
    const worker = spawn(process.execPath, ['-e', workerCode, JSON.stringify([file, args])], {
      stdio: 'ignore',
    });
    const renew = setInterval(() => lease.renew(), 500);
    try {
      await waitFor(async () => (await findMarkedProcesses(mark)).length >= 1, 'sleep running', 10_000);
      worker.kill('SIGKILL');
      const t0 = Date.now();
      await waitFor(
        async () => (await findMarkedProcesses(mark)).length === 0,
        'marked processes gone',
        ORPHAN_BOUND_MS + 5_000,
      );
      expect(Date.now() - t0).toBeLessThan(ORPHAN_BOUND_MS);
    } finally {
      clearInterval(renew);
      for (const pid of await findMarkedProcesses(mark)) process.kill(pid, 'SIGKILL');
      lease.release();
    }
  });
});

describe('findMarkedProcesses', () => {
  it('answers callers asking at once from one scan, each with the processes of its own mark only', async () => {
    const marks = ['scan/a', 'scan/b', 'scan/a-longer'];
    const procs = marks.map((mark, i) => {
      const M = 'ORCHESTRATOR_AGENT_MARK';
      const P = process.env.PATH ?? '';
      // The mark first, in the middle and last in the environment: every place it can be found.
      const env = [
        { [M]: mark, PATH: P },
        { PATH: P, [M]: mark, Z: '1' },
        { PATH: P, [M]: mark },
      ][i];
      const c = spawn('sleep', ['60'], { detached: true, stdio: 'ignore', env });
      started.push(c);
      return c;
    });
    await waitFor(async () => (await findMarkedProcesses('scan/b')).length === 1, 'sleeps running', 10_000);
    const [a, b, longer, none] = await Promise.all([
      ...marks.map((m) => findMarkedProcesses(m)),
      findMarkedProcesses('scan/none'),
    ]);
    expect(a).toEqual([procs[0]!.pid]);
    expect(b).toEqual([procs[1]!.pid]);
    expect(longer).toEqual([procs[2]!.pid]);
    expect(none).toEqual([]);
  });

  it('keeps lease files in a folder of this user only, so workers of other users never collide', () => {
    const file = leaseFile();
    const dir = path.dirname(file);
    expect(dir).toBe(leaseDir());
    expect(path.basename(dir)).toBe(`orchestrator-leases-${os.userInfo().uid}`);
    expect(path.basename(file)).toMatch(new RegExp(`^${process.pid}-[0-9a-f-]{36}\\.lease$`));
    const st = fs.statSync(dir);
    expect(st.uid).toBe(os.userInfo().uid);
    // Made private when this process created it; one made earlier keeps its mode, but must be ours.
    expect(st.mode & 0o022).toBe(0);
  });
});
