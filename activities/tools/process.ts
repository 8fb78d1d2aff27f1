/**
 * Runs one program for a tool: no shell, its own process group (so a timeout or cancellation kills everything
 * it started), output captured into a bounded buffer that keeps the head and the tail.
 */
import { execa } from 'execa';
import { signalGroup } from '../process-group';

/** Bytes of output a tool result keeps (head and tail halves). */
export const OUTPUT_CAP_BYTES = 64 * 1024;

/** Keeps the first and last `cap / 2` bytes of a stream; the middle is counted, not stored. */
export class CappedBuffer {
  private head = Buffer.alloc(0);
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private omitted = 0;

  constructor(private readonly cap = OUTPUT_CAP_BYTES) {}

  push(chunk: Buffer): void {
    const half = Math.floor(this.cap / 2);
    if (this.head.length < half) {
      const take = chunk.subarray(0, half - this.head.length);
      this.head = Buffer.concat([this.head, take]);
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes > half) {
      const first = this.tail[0];
      if (!first) break;
      const excess = this.tailBytes - half;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailBytes -= first.length;
        this.omitted += first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailBytes -= excess;
        this.omitted += excess;
      }
    }
  }

  toString(): string {
    const tail = Buffer.concat(this.tail).toString('utf8');
    const gap = this.omitted > 0 ? `\n[… ${this.omitted} bytes omitted …]\n` : '';
    return this.head.toString('utf8') + gap + tail;
  }
}

/** Caps a string the same way as {@link CappedBuffer}. */
export function capText(text: string, cap = OUTPUT_CAP_BYTES): string {
  const b = new CappedBuffer(cap);
  b.push(Buffer.from(text, 'utf8'));
  return b.toString();
}

export interface RunResult {
  exitCode: number | undefined;
  /** stdout and stderr interleaved, capped. */
  output: string;
  timedOut: boolean;
  cancelled: boolean;
  /** Set when the program could not be started (e.g. not found). */
  spawnError?: string;
}

export interface RunOptions {
  cwd: string;
  timeoutMs: number;
  signal?: AbortSignal;
  env?: Record<string, string | undefined>;
}

/** Runs `argv` without a shell. Never throws for the program's own failures; they are in the result. */
export async function runProgram(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file)
    return { exitCode: undefined, output: '', timedOut: false, cancelled: false, spawnError: 'empty argv' };
  const out = new CappedBuffer();
  const child = execa(file, args, {
    cwd: opts.cwd,
    // A process group of its own, so that killing -pid reaches the grandchildren too.
    detached: true,
    stdin: 'ignore',
    all: true,
    buffer: false,
    reject: false,
    // Secrets of the worker must not leak into commands a model chose.
    env: { ANTHROPIC_API_KEY: undefined, ...opts.env },
  });
  child.all?.on('data', (c: Buffer) => out.push(c));

  let timedOut = false;
  let cancelled = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child.pid, 'SIGKILL');
  }, opts.timeoutMs);
  const onAbort = () => {
    cancelled = true;
    signalGroup(child.pid, 'SIGKILL');
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  // Background processes left behind would hold the output pipe open and hang the tool.
  child.once('exit', () => signalGroup(child.pid, 'SIGKILL'));
  try {
    const r = await child;
    const spawnError = r.failed && r.exitCode === undefined && !r.isTerminated ? r.shortMessage : undefined;
    return {
      exitCode: r.exitCode,
      output: out.toString(),
      timedOut,
      cancelled,
      ...(spawnError ? { spawnError } : {}),
    };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
