/**
 * Runs a gate's command (an argv array, no shell) in the workspace, keeping only the tail of its output.
 *
 * The command runs as its own process group, so a timeout or a cancellation kills everything it started
 * (`npm test` → node → workers), not just the first process. Background processes left holding the
 * output pipe after the command exits are killed after a short grace, so they cannot stall the gate.
 */
import { execa } from 'execa';
import { signalGroup } from '../process-group';

export interface CommandResult {
  /** undefined when the process could not start or was killed by a signal. */
  exitCode: number | undefined;
  signal: string | undefined;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
  /** The last `keepBytes` of stdout and stderr, interleaved as they arrived. */
  output: string;
  /** Why the process could not start (e.g. `spawn npx ENOENT`). */
  spawnError: string | undefined;
}

export interface RunCommandOptions {
  cwd: string;
  timeoutMs: number;
  keepBytes: number;
  signal?: AbortSignal;
  /** Grace between SIGTERM and SIGKILL on timeout or cancellation. */
  killGraceMs?: number;
}

/** Variables never passed to gate commands: tests have no business with the model credentials. */
const WITHHELD_ENV = ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN'];

function gateEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: process.env.CI ?? '1', NO_COLOR: '1' };
  for (const k of WITHHELD_ENV) delete env[k];
  delete env.FORCE_COLOR;
  return env;
}

export async function runCommand(argv: string[], opts: RunCommandOptions): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('runCommand: empty argv');
  const started = Date.now();
  const grace = opts.killGraceMs ?? 3000;
  let tail = Buffer.alloc(0);
  let timedOut = false;
  let cancelled = false;

  const sub = execa(file, args, {
    cwd: opts.cwd,
    detached: true, // its own process group, so the whole tree can be killed
    reject: false,
    all: true,
    buffer: false,
    stdin: 'ignore',
    env: gateEnv(),
    extendEnv: false,
  });
  sub.all?.on('data', (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]);
    if (tail.length > opts.keepBytes * 2) tail = tail.subarray(tail.length - opts.keepBytes);
  });

  const timers: NodeJS.Timeout[] = [];
  const stop = () => {
    signalGroup(sub.pid, 'SIGTERM');
    timers.push(setTimeout(() => signalGroup(sub.pid, 'SIGKILL'), grace));
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
  // Leftover background processes would keep the pipes open and the promise pending.
  sub.on('exit', () => timers.push(setTimeout(() => signalGroup(sub.pid, 'SIGKILL'), 2000)));

  try {
    const r = await sub;
    const spawnError =
      r.exitCode === undefined && r.signal === undefined
        ? ((r.shortMessage ?? r.message ?? 'could not start').split('\n').pop() ?? 'could not start')
        : undefined;
    if (tail.length > opts.keepBytes) tail = tail.subarray(tail.length - opts.keepBytes);
    return {
      exitCode: r.exitCode,
      signal: r.signal,
      timedOut,
      cancelled,
      durationMs: Date.now() - started,
      output: tail.toString('utf8'),
      spawnError,
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
