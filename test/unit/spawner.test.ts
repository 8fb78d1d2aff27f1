/** Programs started through the worker's process starter (activities/spawner, bin/spawner.mjs). */
import { afterEach, describe, expect, it } from 'vitest';
import { runProgram, startDirect, startProgram, type StartOptions } from '../../activities/spawner';
import { groupExists } from '../../activities/process-group';

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
  delete process.env.ORCHESTRATOR_SPAWNER;
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
    process.env.ORCHESTRATOR_SPAWNER = 'off';
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
