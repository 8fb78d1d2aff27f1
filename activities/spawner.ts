/**
 * Starts programs for activities through a small helper process (bin/spawner.mjs) instead of forking the
 * worker. A fork copies the page tables of the whole worker (hundreds of MB resident): ~50 ms of its main
 * thread per program at 900 MB (10 ms at 45 MB), measured, and on a busy host several times that, during
 * which no workflow task, heartbeat or other activity of the worker moves. A phase starts at least two
 * programs (its script agent under the watchdog, the checkpoint's `find`).
 *
 * The program is the helper's child, in its own process group when `detached` (signalled by pid from here
 * as before); its output and exit come back over the helper's IPC channel. The helper starts at the first
 * use and ends with the worker. When it cannot be used (it failed to start three times, or
 * `ORCHESTRATOR_SPAWNER=off`) programs are started from the worker itself, as before. A helper that dies
 * while a program runs takes nothing with it: the program's group is killed and its caller gets an error
 * (a retryable activity failure).
 *
 * {@link startWatched} also hands the program's supervision to the helper (a lease it checks every second,
 * the worker's death): a watchdog without a process of its own, for programs that end by themselves when
 * the helper is killed (bubblewrap's `--die-with-parent`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signalGroup } from './process-group';

/** The helper's script (plain JavaScript: it starts without tsx). */
export const SPAWNER_SCRIPT = fileURLToPath(new URL('../bin/spawner.mjs', import.meta.url));

export interface StartOptions {
  cwd?: string;
  /** The program's whole environment. */
  env: Record<string, string | undefined>;
  /** A process group of its own (its pid is the group id). */
  detached?: boolean;
  /** Written to the program's stdin, which is then closed; without it stdin is ignored. */
  input?: string;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** The program exited (its output may still be arriving; see {@link Program.ended}). */
  onExit?: () => void;
}

/** What the process starter watches for a program (bin/spawner.mjs): see {@link startWatched}. */
export interface Watch {
  /** The lease file the activity renews; its program's group is ended once it is older than staleMs. */
  lease: string;
  staleMs: number;
  /** SIGTERM → SIGKILL grace. */
  graceMs: number;
}

/** How a program ended: an exit code, or the signal that killed it, or why it never started. */
export interface ProgramEnd {
  exitCode?: number;
  signal?: NodeJS.Signals;
  spawnError?: string;
}

/** A started program. */
export interface Program {
  /** Its pid once started; undefined before, or when it could not start. */
  readonly pid: number | undefined;
  /** The pid, or undefined when it could not start. */
  readonly started: Promise<number | undefined>;
  /** When it exited and its output is all delivered. Rejects when the helper died under it. */
  readonly ended: Promise<ProgramEnd>;
}

/** One program in flight through the helper. */
interface Entry {
  program: MutableProgram;
  opts: StartOptions;
}

interface MutableProgram extends Program {
  pid: number | undefined;
  resolveStarted(pid: number | undefined): void;
  resolveEnded(end: ProgramEnd): void;
  rejectEnded(err: Error): void;
}

function newProgram(): MutableProgram {
  let resolveStarted!: (pid: number | undefined) => void;
  let resolveEnded!: (end: ProgramEnd) => void;
  let rejectEnded!: (err: Error) => void;
  const started = new Promise<number | undefined>((r) => (resolveStarted = r));
  const ended = new Promise<ProgramEnd>((res, rej) => {
    resolveEnded = res;
    rejectEnded = rej;
  });
  return { pid: undefined, started, ended, resolveStarted, resolveEnded, rejectEnded };
}

/** A message from the helper (bin/spawner.mjs documents them). */
type HelperMessage =
  | { id: number; ev: 'spawn'; pid: number }
  | { id: number; ev: 'error'; message: string }
  | { id: number; ev: 'stdout' | 'stderr'; data: Uint8Array }
  | { id: number; ev: 'exit' | 'close'; code: number | null; signal: NodeJS.Signals | null };

/** Helper failures after which programs are started from the worker itself. */
const MAX_HELPER_FAILURES = 3;

class Helper {
  private readonly pending = new Map<number, Entry>();
  private nextId = 1;
  private alive = true;

  constructor(
    private readonly proc: ChildProcess,
    private readonly onGone: (failed: boolean) => void,
  ) {
    proc.on('message', (m: HelperMessage) => this.dispatch(m));
    proc.once('error', () => this.gone(true));
    proc.once('exit', (code) => this.gone(code !== 0));
    this.idle();
  }

  start(file: string, args: readonly string[], opts: StartOptions, watch?: Watch): Program {
    const program = newProgram();
    const id = this.nextId++;
    this.pending.set(id, { program, opts });
    this.busy();
    this.proc.send({
      id,
      file,
      args,
      cwd: opts.cwd,
      env: opts.env,
      detached: opts.detached === true,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(watch ? { watch } : {}),
    });
    return program;
  }

  private dispatch(m: HelperMessage): void {
    const entry = this.pending.get(m.id);
    if (!entry) return;
    const { program, opts } = entry;
    switch (m.ev) {
      case 'spawn':
        program.pid = m.pid;
        program.resolveStarted(m.pid);
        break;
      case 'error':
        this.done(m.id);
        program.resolveStarted(undefined);
        program.resolveEnded({ spawnError: m.message });
        break;
      case 'stdout':
        opts.onStdout?.(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
        break;
      case 'stderr':
        opts.onStderr?.(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
        break;
      case 'exit':
        opts.onExit?.();
        break;
      case 'close':
        this.done(m.id);
        program.resolveEnded({
          ...(m.code !== null ? { exitCode: m.code } : {}),
          ...(m.signal !== null ? { signal: m.signal } : {}),
        });
        break;
    }
  }

  private done(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.idle();
  }

  /** While programs run, the channel keeps the worker's event loop alive; idle, it must not. */
  private busy(): void {
    this.proc.ref();
    this.proc.channel?.ref();
  }

  private idle(): void {
    this.proc.unref();
    this.proc.channel?.unref();
  }

  private gone(failed: boolean): void {
    if (!this.alive) return;
    this.alive = false;
    for (const { program } of this.pending.values()) {
      // Its output and exit can no longer reach us: it must not run on unobserved.
      signalGroup(program.pid, 'SIGKILL');
      program.resolveStarted(undefined);
      program.rejectEnded(new Error('the process starter (bin/spawner.mjs) exited while the program ran'));
    }
    this.pending.clear();
    this.onGone(failed);
  }

  isAlive(): boolean {
    return this.alive && this.proc.connected;
  }
}

let helper: Helper | undefined;
let helperFailures = 0;

function theHelper(): Helper | undefined {
  if (process.env.ORCHESTRATOR_SPAWNER === 'off' || helperFailures >= MAX_HELPER_FAILURES) return undefined;
  if (helper?.isAlive()) return helper;
  let proc: ChildProcess;
  try {
    // Not fork(): that would pass on the worker's execArgv (tsx's loader) and environment. A session of
    // its own: a terminal's ^Z or ^C for the worker's foreground group must not stop it (a stopped starter
    // watches no lease, startWatched) nor kill it under running programs; it ends when the worker does.
    proc = spawn(process.execPath, [SPAWNER_SCRIPT], {
      detached: true,
      cwd: '/',
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
  } catch {
    helperFailures++;
    return undefined;
  }
  const h = new Helper(proc, (failed) => {
    if (failed) helperFailures++;
    if (helper === h) helper = undefined;
  });
  helper = h;
  return h;
}

/**
 * Starts `file args` (stdin ignored unless `input` is given, stdout and stderr piped to the handlers); see
 * the module doc.
 */
export function startProgram(file: string, args: readonly string[], opts: StartOptions): Program {
  return theHelper()?.start(file, args, opts) ?? startDirect(file, args, opts);
}

/**
 * Starts `file args` as {@link startProgram} does, detached, with the process starter as its watchdog: its
 * group is ended when `watch.lease` goes stale or the worker dies (bin/spawner.mjs). Undefined when the
 * process starter is not in use (`ORCHESTRATOR_SPAWNER=off`, or it failed): the caller then needs a
 * watchdog of its own (./watchdog). Only for programs that also end when the process starter is SIGKILLed
 * (bubblewrap with `--die-with-parent`, whose parent it is): nothing is left to end them then.
 */
export function startWatched(
  file: string,
  args: readonly string[],
  opts: Omit<StartOptions, 'detached'>,
  watch: Watch,
): Program | undefined {
  return theHelper()?.start(file, args, { ...opts, detached: true }, watch);
}

/** The same, forked from this process. */
export function startDirect(file: string, args: readonly string[], opts: StartOptions): Program {
  const program = newProgram();
  let child: ChildProcess;
  try {
    child = spawn(file, [...args], {
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      env: opts.env,
      detached: opts.detached === true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
  } catch (err) {
    program.resolveStarted(undefined);
    program.resolveEnded({ spawnError: err instanceof Error ? err.message : String(err) });
    return program;
  }
  if (opts.input !== undefined && child.stdin) {
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
  }
  let started = false;
  child.once('spawn', () => {
    started = true;
    program.pid = child.pid;
    program.resolveStarted(child.pid);
  });
  child.once('error', (err) => {
    if (started) return;
    program.resolveStarted(undefined);
    program.resolveEnded({ spawnError: err.message });
  });
  child.stdout?.on('data', (b: Buffer) => opts.onStdout?.(b));
  child.stderr?.on('data', (b: Buffer) => opts.onStderr?.(b));
  child.once('exit', () => {
    if (started) opts.onExit?.();
  });
  child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
    if (!started) return;
    program.resolveEnded({
      ...(code !== null ? { exitCode: code } : {}),
      ...(signal !== null ? { signal } : {}),
    });
  });
  return program;
}

/** What {@link runProgram} collected: all of stdout and stderr, and how the program ended. */
export interface ProgramRun extends ProgramEnd {
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * Runs `file args` to its end through {@link startProgram} and collects its output: for short helper
 * programs (git plumbing) that would otherwise be forked from the worker itself.
 */
export async function runProgram(
  file: string,
  args: readonly string[],
  opts: Omit<StartOptions, 'onStdout' | 'onStderr' | 'onExit' | 'detached'>,
): Promise<ProgramRun> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const program = startProgram(file, args, {
    ...opts,
    onStdout: (b) => out.push(b),
    onStderr: (b) => err.push(b),
  });
  const end = await program.ended;
  return { ...end, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}
