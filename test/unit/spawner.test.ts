/** Programs started through the worker's process starter (activities/spawner, bin/spawner.mjs). */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  runProgram,
  startDirect,
  startProgram,
  startWatched,
  type StartOptions,
} from '../../activities/spawner';
import { groupExists } from '../../activities/process-group';
import { Lease, leaseFile } from '../../activities/watchdog';
import { processesMentioning } from '../harness/processes';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/** Runs a program to its end; returns what it printed and how it ended. */
async function run(
  start: typeof startProgram,
  file: string,
  args: string[],
  opts: Partial<StartOptions> = {},
) {
  let out = '';
  let err = '';
  let exited = 0;
  const p = start(file, args, {
    env,
    onStdout: (b) => (out += b.toString('utf8')),
    onStderr: (b) => (err += b.toString('utf8')),
    onExit: () => exited++,
    ...opts,
  });
  const pid = await p.started;
  const end = await p.ended;
  return { pid, end, out, err, exited };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe.each([
  ['through the process starter', startProgram],
  ['forked from the worker', startDirect],
])('a program %s', (_name, start) => {
  it('delivers its output, streams apart, and its exit code', async () => {
    const big = 300_000;
    const r = await run(start, 'sh', [
      '-c',
      `echo out; echo err >&2; head -c ${big} /dev/zero | tr '\\0' x; exit 3`,
    ]);
    expect(r.pid).toBeGreaterThan(0);
    expect(r.end).toEqual({ exitCode: 3 });
    expect(r.out).toBe(`out\n${'x'.repeat(big)}`);
    expect(r.err).toBe('err\n');
    expect(r.exited).toBe(1);
  });

  it('hands `input` to its stdin and closes it; without it, stdin is empty', async () => {
    const r = await run(start, 'sh', ['-c', 'wc -c; cat'], { input: 'a\0b\nc' });
    expect(r.out.trim().split('\n')[0]?.trim()).toBe('5');
    const none = await run(start, 'sh', ['-c', 'cat; echo done']);
    expect(none.out).toBe('done\n');
    // A program that never reads its input ends as it would anyway.
    const ignored = await run(start, 'sh', ['-c', 'exit 0'], { input: 'x'.repeat(1_000_000) });
    expect(ignored.end).toEqual({ exitCode: 0 });
  });

  it('runs in the working directory and with exactly the environment given', async () => {
    const r = await run(start, 'sh', ['-c', 'pwd; echo "$ONLY_THIS:${HOME:-none}"'], {
      cwd: '/tmp',
      env: { ...env, ONLY_THIS: 'yes' },
    });
    expect(r.out).toBe('/tmp\nyes:none\n');
  });

  it('leads a process group of its own when detached, and reports the signal that ended it', async () => {
    const p = start('sh', ['-c', 'sleep 30 & sleep 30'], { env, detached: true });
    const pid = await p.started;
    expect(pid).toBeGreaterThan(0);
    expect(groupExists(pid)).toBe(true);
    process.kill(-pid!, 'SIGKILL');
    expect(await p.ended).toEqual({ signal: 'SIGKILL' });
  });

  it('says why a program could not start', async () => {
    const r = await run(start, 'no-such-program-here', []);
    expect(r.pid).toBeUndefined();
    expect(r.end.spawnError).toMatch(/ENOENT/);
    expect(r.exited).toBe(0);
  });
});

describe('the process starter', () => {
  it('is bypassed with ORCHESTRATOR_SPAWNER=off', async () => {
    vi.stubEnv('ORCHESTRATOR_SPAWNER', 'off');
    const r = await run(startProgram, 'sh', ['-c', 'echo $PPID']);
    // Forked from this process: the program's parent is the test's own process.
    expect(Number(r.out.trim())).toBe(process.pid);
  });

  it('starts programs from a process other than the worker', async () => {
    const r = await run(startProgram, 'sh', ['-c', 'echo $PPID']);
    expect(Number(r.out.trim())).not.toBe(process.pid);
    expect(r.end).toEqual({ exitCode: 0 });
  });

  it('serves many programs at once', async () => {
    const rs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => run(startProgram, 'sh', ['-c', `echo ${i}; exit ${i % 3}`])),
    );
    rs.forEach((r, i) => {
      expect(r.out).toBe(`${i}\n`);
      expect(r.end).toEqual({ exitCode: i % 3 });
    });
  });
});

describe('when the worker dies', () => {
  it('the process starter ends too', async () => {
    const { execa } = await import('execa');
    const script = `
      import { startProgram } from ${JSON.stringify(new URL('../../activities/spawner.ts', import.meta.url).pathname)};
      const p = startProgram('sleep', ['30'], { env: { PATH: process.env.PATH }, detached: true });
      console.log(await p.started);
      setInterval(() => undefined, 1000);
    `;
    const worker = execa('node', ['--import', 'tsx', '--input-type=module', '-e', script], { reject: false });
    const sleepPid = await new Promise<number>((resolve) =>
      worker.stdout?.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))),
    );
    // The sleep's parent is the starter: /proc/<pid>/stat field 4.
    const stat = await import('node:fs').then((fs) => fs.readFileSync(`/proc/${sleepPid}/stat`, 'utf8'));
    const starter = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    expect(starter).not.toBe(worker.pid);
    worker.kill('SIGKILL');
    await worker;
    const gone = async () => {
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(starter, 0);
        } catch {
          return true;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    };
    expect(await gone()).toBe(true);
    process.kill(-sleepPid, 'SIGKILL');
  }, 60_000);
});

/** Polls `ok` every 100 ms for at most `ms`; whether it came true. */
/**
 * How long a process may take to end (or start) before a check here fails: liveness, not speed. Five
 * seconds failed once in a fresh clone's CI while the temporal tier ran beside (bwrap's namespace had not
 * gone 5 s after its starter was SIGKILLed); one that never ends still fails.
 */
const LIVENESS_MS = 20_000;

async function within(ms: number, ok: () => boolean): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100)))
    if (ok()) return true;
  return ok();
}

/**
 * A worker process (node) that starts `startCall` (an expression) and prints its pid, then idles, renewing
 * the lease `renew` if given. `detached`: in a process group of its own, as a worker in a terminal.
 */
async function workerWith(startCall: string, o: { renew?: string; detached?: boolean } = {}) {
  const { execa } = await import('execa');
  const script = `
    import { startWatched } from ${JSON.stringify(new URL('../../activities/spawner.ts', import.meta.url).pathname)};
    import { utimesSync } from 'node:fs';
    const p = ${startCall};
    console.log(await p.started);
    setInterval(() => { ${o.renew ? `const t = new Date(); utimesSync(${JSON.stringify(o.renew)}, t, t);` : ''} }, 200);
  `;
  const worker = execa('node', ['--import', 'tsx', '--input-type=module', '-e', script], {
    reject: false,
    detached: o.detached === true,
  });
  const pid = await new Promise<number>((resolve) =>
    worker.stdout?.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))),
  );
  return { worker, pid };
}

/** The parent pid of `pid` (/proc/<pid>/stat field 4). */
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('a program the process starter watches (startWatched)', () => {
  const watch = (lease: string, staleMs: number) => ({ lease, staleMs, graceMs: 500 });

  it('runs to its end while its lease is renewed', async () => {
    const lease = new Lease(leaseFile());
    const renew = setInterval(() => lease.renew(), 200);
    try {
      const p = startWatched('sh', ['-c', 'sleep 2.5'], { env }, watch(lease.file, 1_500));
      expect(p).toBeDefined();
      const pid = await p!.started;
      expect(groupExists(pid)).toBe(true);
      expect(await p!.ended).toEqual({ exitCode: 0 });
    } finally {
      clearInterval(renew);
      lease.release();
    }
  }, 20_000);

  it('has its group ended once its lease goes stale, and says so in its stderr', async () => {
    const lease = new Lease(leaseFile());
    const tag = `40.${String(Date.now()).slice(-6)}`;
    let err = '';
    try {
      const t0 = Date.now();
      const p = startWatched(
        'sh',
        ['-c', `sleep ${tag} & sleep ${tag}`],
        { env, onStderr: (b) => (err += b.toString('utf8')) },
        watch(lease.file, 1_500),
      )!;
      const pid = await p.started;
      expect(await p.ended).toEqual({ signal: 'SIGTERM' });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
      expect(err).toBe(`[watchdog] lease ${lease.file} is stale: ending process group ${pid}\n`);
      // The background sleep was in the group too.
      expect(await within(LIVENESS_MS, () => processesMentioning(`sleep ${tag}`).length === 0)).toBe(true);
    } finally {
      lease.release();
    }
  }, 20_000);

  it('is not available with ORCHESTRATOR_SPAWNER=off: the caller keeps its own watchdog', () => {
    vi.stubEnv('ORCHESTRATOR_SPAWNER', 'off');
    expect(startWatched('true', [], { env }, watch('/nonexistent', 1_000))).toBeUndefined();
  });

  it('ends with its worker: SIGKILLed, the worker leaves no watched program behind', async () => {
    const tag = `41.${String(Date.now()).slice(-6)}`;
    const lease = new Lease(leaseFile());
    const renew = setInterval(() => lease.renew(), 200);
    try {
      const { worker, pid } = await workerWith(
        `startWatched('sh', ['-c', 'sleep ${tag} & sleep ${tag}'], { env: { PATH: process.env.PATH } }, { lease: ${JSON.stringify(lease.file)}, staleMs: 60000, graceMs: 500 })`,
      );
      expect(groupExists(pid)).toBe(true);
      const starter = parentOf(pid);
      worker.kill('SIGKILL');
      await worker;
      // The lease is still fresh: it is the worker's death that ends the program, at once.
      expect(await within(LIVENESS_MS, () => !groupExists(pid))).toBe(true);
      expect(processesMentioning(`sleep ${tag}`)).toEqual([]);
      expect(await within(LIVENESS_MS, () => !fs.existsSync(`/proc/${starter}`))).toBe(true);
    } finally {
      clearInterval(renew);
      lease.release();
    }
  }, 60_000);

  it("ends when its worker's whole process group is stopped (^Z in a terminal): the starter is not", async () => {
    const tag = `43.${String(Date.now()).slice(-6)}`;
    const lease = new Lease(leaseFile());
    const { worker, pid } = await workerWith(
      `startWatched('sh', ['-c', 'sleep ${tag} & sleep ${tag}'], { env: { PATH: process.env.PATH } }, { lease: ${JSON.stringify(lease.file)}, staleMs: 1500, graceMs: 500 })`,
      { renew: lease.file, detached: true },
    );
    try {
      // Renewed by the worker: the program runs on.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(groupExists(pid)).toBe(true);
      process.kill(-worker.pid!, 'SIGSTOP');
      expect(await within(LIVENESS_MS, () => !groupExists(pid))).toBe(true);
    } finally {
      process.kill(-worker.pid!, 'SIGKILL');
      process.kill(-worker.pid!, 'SIGCONT');
      await worker;
      lease.release();
    }
  }, 60_000);

  const bwrapWorks =
    spawnSync('bwrap', ['--ro-bind', '/', '/', '--dev', '/dev', '--unshare-pid', 'true']).status === 0;
  it.skipIf(!bwrapWorks)(
    'a bubblewrap sandbox with --die-with-parent ends when the process starter itself is SIGKILLed',
    async () => {
      const tag = `42.${String(Date.now()).slice(-6)}`;
      const lease = new Lease(leaseFile());
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-watch-'));
      try {
        const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--unshare-pid'];
        const { worker, pid } = await workerWith(
          `startWatched('bwrap', ${JSON.stringify([...args, '--die-with-parent', '--', 'sh', '-c', `sleep ${tag} & sleep ${tag}`])}, { env: { PATH: process.env.PATH } }, { lease: ${JSON.stringify(lease.file)}, staleMs: 60000, graceMs: 500 })`,
        );
        // The worker's own command line holds the script that names the sleeps: not counted.
        const sleeps = () =>
          processesMentioning(`sleep ${tag}`).filter((l) => !l.startsWith(`${worker.pid} `));
        expect(await within(LIVENESS_MS, () => sleeps().length >= 2)).toBe(true);
        // Nothing may end it but bubblewrap: the worker is frozen (it would end the group when it hears of
        // its starter's death), and the starter dies without a word.
        worker.kill('SIGSTOP');
        try {
          process.kill(parentOf(pid), 'SIGKILL');
          expect(await within(LIVENESS_MS, () => sleeps().length === 0)).toBe(true);
        } finally {
          worker.kill('SIGKILL');
          await worker;
        }
      } finally {
        lease.release();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    // Retried: it failed in a fresh clone's CI beside the temporal tier and once here beside other tests
    // (load 5-10), the namespace still listed 20 s after the starter's SIGKILL; alone and in its file it
    // passes. The cause is not found. A regression that never ends the namespace fails all three tries.
    { timeout: 60_000, retry: 2 },
  );
});

describe('runProgram', () => {
  it('collects all of stdout and stderr and says how the program ended', async () => {
    const r = await runProgram('sh', ['-c', 'cat; echo err >&2; exit 2'], { env, input: 'in' });
    expect(r.stdout.toString()).toBe('in');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r.exitCode).toBe(2);
    const missing = await runProgram('/nonexistent/program', [], { env });
    expect(missing.spawnError).toMatch(/ENOENT/);
  });
});
