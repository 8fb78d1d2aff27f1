/**
 * The SDK's workflow thread, started at the beginning of `orchestrator worker` (and `dev`) rather than
 * when the main Temporal worker is created. Booting that thread (Node's worker bootstrap, then `@temporalio/proto`,
 * `@temporalio/common` and the core bridge loaded again there) is the longest single step of a worker's
 * start, and it needs nothing from this process: started first, it runs on the other core while the main
 * thread loads the SDK and our modules, connects and sets up, instead of after all of that.
 *
 * The SDK spawns its thread itself (`new Worker(require.resolve('./workflow-worker-thread'))`, in
 * ThreadedVMWorkflowCreator.create) and has no option to be given one, so {@link handOverPrestartedThread}
 * replaces `worker_threads.Worker` while the main worker is created: the first construction of that same
 * file with no options gets the prestarted thread; any other construction, and every one when the
 * prestarted thread failed or is already handed over, is Node's own. Without a prestart (tests, the
 * in-process worker of `run --local`) the constructor is still watched, only to end the threads of a
 * create that failed.
 *
 * Its state lives on globalThis: the CLI's entry (dist/cli/main.cjs) and the worker command's module
 * are separate builds, each with its own copy of this file.
 */
import { createRequire } from 'node:module';
import type { Worker as Thread, WorkerOptions as ThreadOptions } from 'node:worker_threads';

/** The part of node:worker_threads used here, its constructor replaceable (it is a plain CommonJS export). */
interface WorkerThreads {
  Worker: typeof Thread;
}

interface Prestarted {
  thread: Thread;
  /** The SDK's thread entry, resolved as the SDK resolves it. */
  file: string;
  /** It errored or exited before being handed over: never handed over then. */
  failed: boolean;
}

const KEY = Symbol.for('orchestrator.prestartedWorkflowThread');
const slot = globalThis as { [KEY]?: Prestarted };

/** Node's worker_threads, loaded on first use (the CLI's entry imports this file for every command). */
function workerThreads(): WorkerThreads {
  return createRequire(import.meta.url)('node:worker_threads') as WorkerThreads;
}

/**
 * Starts the SDK's workflow thread now. Unreferenced until handed over, so a process that never creates
 * its worker (a configuration error) exits as before. Does nothing when it cannot (the SDK is not
 * installed where expected): the SDK then spawns its own thread as usual.
 */
export function prestartWorkflowThread(): void {
  if (slot[KEY]) return;
  try {
    const file = createRequire(import.meta.url).resolve(
      '@temporalio/worker/lib/workflow/workflow-worker-thread',
    );
    const thread = new (workerThreads().Worker)(file);
    const entry: Prestarted = { thread, file, failed: false };
    const fail = (): void => {
      entry.failed = true;
    };
    thread.once('error', fail);
    thread.once('exit', fail);
    thread.unref();
    slot[KEY] = entry;
  } catch {
    // No prestart: nothing changes.
  }
}

/** Whether a {@link handOverPrestartedThread} holds Node's constructor now (two at once would nest). */
const HOLDING = Symbol.for('orchestrator.workflowThreadConstructorHeld');
const held = globalThis as { [HOLDING]?: boolean };

/**
 * Runs `create` (the main worker's Worker.create) with the prestarted thread, if any, given to the SDK's
 * first spawn of its workflow thread; `onHandedOver` is called then (Node emits no `worker` event for a
 * thread spawned earlier). A prestarted thread not handed over (it failed, or `create` spawned no
 * thread) is terminated.
 *
 * When `create` fails, every thread it spawned is terminated too: the SDK spawns its workflow threads
 * before it registers the worker with the server, and does not end them when that fails (a namespace
 * that does not exist, a server that died during the start). Left running, they kept the process alive
 * after it had printed its error: `orchestrator worker` with a wrong namespace never exited.
 *
 * Node's constructor is back in place once the prestarted thread is handed over, or once `create` has
 * settled: with a prestart, only the first thread is watched, which is all the SDK spawns at its default
 * of one workflow thread (`reuseV8Context`, which we keep). While another call holds it (in-process workers created at once, in tests) `create` runs as
 * it is.
 */
export async function handOverPrestartedThread<T>(
  create: () => Promise<T>,
  onHandedOver: () => void,
): Promise<T> {
  const entry = slot[KEY];
  slot[KEY] = undefined;
  if (held[HOLDING]) {
    if (entry) void entry.thread.terminate();
    return create();
  }
  held[HOLDING] = true;
  const wt = workerThreads();
  const NodeWorker = wt.Worker;
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    wt.Worker = NodeWorker;
    held[HOLDING] = false;
  };
  let handedOver = false;
  const spawned: Thread[] = [];
  function Handing(filename: string | URL, options?: ThreadOptions): Thread {
    if (entry && !handedOver && !entry.failed && options === undefined && String(filename) === entry.file) {
      handedOver = true;
      restore();
      entry.thread.removeAllListeners('error').removeAllListeners('exit');
      entry.thread.ref();
      onHandedOver();
      spawned.push(entry.thread);
      return entry.thread;
    }
    const thread = new NodeWorker(filename, options);
    spawned.push(thread);
    return thread;
  }
  wt.Worker = Handing as unknown as typeof NodeWorker;
  try {
    return await create();
  } catch (err) {
    await Promise.allSettled(spawned.map((t) => t.terminate()));
    throw err;
  } finally {
    restore();
    if (entry && !handedOver) void entry.thread.terminate();
  }
}
