/**
 * The one runner for programs an agent or a gate chose (`run_command`, `git`, gate commands): sandboxed by
 * {@link Sandbox.wrap}, no shell, its own process group (a timeout or cancellation kills everything it
 * started), output kept in a bounded buffer and redacted.
 */
import { loadExeca } from '../load-execa';
import { redact } from '../../src/redact';
import { signalGroup } from '../process-group';
import { CappedBuffer, OUTPUT_CAP_BYTES } from '../tools/process';
import type { Sandbox, WrapOptions } from './index';

export interface RunResult {
  /** undefined when the program could not start or was killed by a signal. */
  exitCode: number | undefined;
  signal: string | undefined;
  /** stdout and stderr interleaved, capped, redacted. */
  output: string;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
  /** Why the program could not start (e.g. `spawn npx ENOENT`). */
  spawnError?: string;
  /** False when it ran without bwrap (the fallback). */
  sandboxed: boolean;
}

export interface RunOptions extends WrapOptions {
  sandbox: Sandbox;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Output bytes kept: head and tail halves, or only the tail. */
  capBytes?: number;
  keep?: 'head-and-tail' | 'tail';
  /** Grace between SIGTERM and SIGKILL on timeout or cancellation; 0 kills at once. */
  killGraceMs?: number;
}

class TailBuffer {
  private buf = Buffer.alloc(0);
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > this.cap * 2) this.buf = this.buf.subarray(this.buf.length - this.cap);
  }
  toString(): string {
    return (this.buf.length > this.cap ? this.buf.subarray(this.buf.length - this.cap) : this.buf).toString(
      'utf8',
    );
  }
}

/** Runs `argv` confined. Never throws for the program's own failures; they are in the result. */
export async function runProgram(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const base = { timedOut: false, cancelled: false, signal: undefined, output: '' };
  if (argv.length === 0 || !argv[0])
    return { ...base, exitCode: undefined, durationMs: 0, spawnError: 'empty argv', sandboxed: false };
  const cmd = await opts.sandbox.wrap(argv, opts);
  const execa = await loadExeca();
  const cap = opts.capBytes ?? OUTPUT_CAP_BYTES;
  const out = opts.keep === 'tail' ? new TailBuffer(cap) : new CappedBuffer(cap);
  const grace = opts.killGraceMs ?? 0;
  const child = execa(cmd.file, cmd.args, {
    cwd: cmd.cwd,
    env: cmd.env,
    extendEnv: false,
    // A process group of its own, so that killing -pid reaches the grandchildren too.
    detached: true,
    stdin: 'ignore',
    all: true,
    buffer: false,
    reject: false,
  });
  child.all?.on('data', (c: Buffer) => out.push(c));

  let timedOut = false;
  let cancelled = false;
  const timers: NodeJS.Timeout[] = [];
  const stop = () => {
    if (grace <= 0) {
      signalGroup(child.pid, 'SIGKILL');
      return;
    }
    signalGroup(child.pid, 'SIGTERM');
    timers.push(setTimeout(() => signalGroup(child.pid, 'SIGKILL'), grace));
  };
  timers.push(
    setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs),
  );
  const onAbort = () => {
    cancelled = true;
    stop();
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });
  // Background processes left behind would hold the output pipe open and hang the runner.
  child.once('exit', () => signalGroup(child.pid, 'SIGKILL'));
  try {
    const r = await child;
    const output = redact(out.toString());
    // Inside bwrap a missing program is bwrap's own exec failure (exit 1), not a spawn error of ours.
    const execFailed = cmd.sandboxed && r.exitCode === 1 ? /^bwrap: execvp (.*)/.exec(output) : null;
    const spawnError =
      r.failed && r.exitCode === undefined && r.signal === undefined
        ? ((r.shortMessage ?? r.message ?? 'could not start').split('\n').pop() ?? 'could not start')
        : execFailed
          ? `spawn ${execFailed[1]?.trim() ?? argv[0]}`
          : undefined;
    return {
      exitCode: r.exitCode,
      signal: r.signal,
      output,
      timedOut,
      cancelled,
      durationMs: Date.now() - started,
      ...(spawnError ? { spawnError } : {}),
      sandboxed: cmd.sandboxed,
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
