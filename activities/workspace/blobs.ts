/**
 * Reading loose blobs for a restore, on this thread and on a helper thread at once.
 *
 * Inflating is most of a large restore's CPU: `inflateSync` costs ~0.1 ms a call whatever the size (it
 * builds a zlib stream object each time), so 1,000 changed files spent ~150 ms reading their blobs against
 * ~65 ms writing them. The worker has a second core: a helper thread takes blobs from the same list while
 * this thread reads and writes, each claiming the next one not taken (a shared counter), so neither waits
 * for the other and the slower one never holds the faster back.
 *
 * The helper is started before the restore walks the workspace (its boot, ~50–80 ms, overlaps the walk)
 * and ended with the restore: restores are rare, and an idle thread costs memory for every run. Its code
 * is a string evaluated in the thread, not a file: the worker runs from a bundle, the tests and benches
 * from TypeScript, and a string loads the same in both. Whatever it fails at (an object not loose, not a
 * blob, a thread that cannot start) fails the restore's shortcut, and the caller's full restore decides.
 */
import fsSync from 'node:fs';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { Worker } from 'node:worker_threads';

/** Below this many blobs the helper is not worth its messages: this thread reads them all. */
export const HELPER_MIN_BLOBS = 64;
/** Blobs the helper sends at once, and this thread reads between two looks at what the helper sent. */
const BATCH = 16;

/**
 * Reads loose blobs synchronously through one buffer: `readFileSync` and `inflateSync` at their defaults
 * cost a new buffer, a stat call and several output chunks for each object, more CPU than git's whole
 * checkout of the same file. The helper thread runs the same steps ({@link HELPER_SOURCE}).
 */
export class BlobReader {
  private buf = Buffer.allocUnsafe(64 * 1024);
  constructor(private readonly gitDir: string) {}

  /** A loose blob's content; throws when it is not loose or not a blob. */
  read(id: string): Buffer {
    const fd = fsSync.openSync(path.join(this.gitDir, 'objects', id.slice(0, 2), id.slice(2)), 'r');
    let size = 0;
    try {
      for (;;) {
        if (size === this.buf.length) {
          const bigger = Buffer.allocUnsafe(this.buf.length * 2);
          this.buf.copy(bigger);
          this.buf = bigger;
        }
        const n = fsSync.readSync(fd, this.buf, size, this.buf.length - size, size);
        if (n === 0) break;
        size += n;
      }
    } finally {
      fsSync.closeSync(fd);
    }
    // Output in one chunk for most files (64 KiB; the default 16 KiB made most of them several).
    const raw = inflateSync(this.buf.subarray(0, size), { chunkSize: 64 * 1024 });
    return blobContent(raw, id);
  }
}

/** The content of an inflated loose object, which must be a blob. */
function blobContent(raw: Buffer, id: string): Buffer {
  const nul = raw.indexOf(0);
  if (raw.subarray(0, 5).toString('latin1') !== 'blob ' || nul < 0)
    throw new Error(`object ${id} is not a blob`);
  return raw.subarray(nul + 1);
}

/**
 * The helper thread: {@link BlobReader.read} and {@link blobContent} in plain JavaScript, then a loop
 * claiming ids from the shared counter. It sends `{ blobs: [index, content, …] }` every {@link BATCH}
 * blobs and `{ done: true }` at the end, or `{ error }` and stops.
 */
const HELPER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const { inflateSync } = require('node:zlib');
let buf = Buffer.allocUnsafe(64 * 1024);
function read(gitDir, id) {
  const fd = fs.openSync(path.join(gitDir, 'objects', id.slice(0, 2), id.slice(2)), 'r');
  let size = 0;
  try {
    for (;;) {
      if (size === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, size, buf.length - size, size);
      if (n === 0) break;
      size += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  const raw = inflateSync(buf.subarray(0, size), { chunkSize: 64 * 1024 });
  const nul = raw.indexOf(0);
  if (raw.subarray(0, 5).toString('latin1') !== 'blob ' || nul < 0) throw new Error('object ' + id + ' is not a blob');
  return raw.subarray(nul + 1);
}
// Its first few hundred reads would run cold (~0.4 ms each against ~0.1 warm): warmed once at boot.
{
  const sample = require('node:zlib').deflateSync(Buffer.alloc(8192, 'warm up the inflate path. '));
  for (let i = 0; i < 400; i++) inflateSync(sample, { chunkSize: 64 * 1024 });
}
parentPort.postMessage({ warm: true });
parentPort.on('message', ({ gitDir, ids, next, stop }) => {
  // Asked to end between jobs: the thread then ends once its event loop is empty.
  if (stop) return parentPort.close();
  let blobs = [];
  let moved = [];
  try {
    for (;;) {
      const i = Atomics.add(next, 0, 1);
      if (i >= ids.length) break;
      // A copy of its own, moved to the other thread: sent as a view, the whole 64 KiB buffer would go.
      const content = new Uint8Array(read(gitDir, ids[i]));
      blobs.push(i, content);
      moved.push(content.buffer);
      if (blobs.length >= ${2 * BATCH}) {
        parentPort.postMessage({ blobs }, moved);
        blobs = [];
        moved = [];
      }
    }
    parentPort.postMessage({ blobs, done: true }, moved);
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

/** What the helper sends. */
type HelperMessage = { blobs?: (number | Uint8Array)[]; done?: boolean; error?: string; warm?: boolean };

/** The helper, lent to one restore at a time: {@link lendHelper}, then {@link eachBlob}, then `give back`. */
export interface Helper {
  readonly thread: Worker;
  /** Settles once the thread runs (a restore need not wait: this thread reads meanwhile). */
  readonly online: Promise<void>;
  /** Ends the thread: a job it was sent was not finished (see {@link eachBlob}). */
  discard(): void;
  /** Gives the helper back after the restore. */
  giveBack(): void;
}

/** An idle helper is ended after this long: a thread costs memory in every worker process. */
const IDLE_MS = 10 * 60_000;

/** The worker process's helper thread, when one is running. */
interface Shared {
  thread: Worker;
  online: Promise<void>;
  lent: boolean;
  idle?: NodeJS.Timeout;
}
let shared: Shared | undefined;

/**
 * Starts the helper thread unless it runs: called when a large workspace is checkpointed, so that a
 * restore of it later finds the thread booted (~50–80 ms of a core, which at restore time the walk
 * needs). Node options (a loader, a young-generation size) are not passed on: the helper needs none, and
 * a loader would slow its boot. Nothing happens when threads cannot start here.
 */
export function startHelper(): void {
  if (shared) return;
  let thread: Worker;
  try {
    thread = new Worker(HELPER_SOURCE, {
      eval: true,
      execArgv: [],
      stdout: false,
      stderr: false,
      // Its heap holds only the blobs in flight.
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 },
    });
  } catch {
    return;
  }
  const online = new Promise<void>((resolve) => thread.once('online', () => resolve()));
  const entry: Shared = { thread, online, lent: false };
  shared = entry;
  // Never an unhandled 'error' (which would end the worker process): eachBlob listens while it works.
  thread.on('error', () => {});
  thread.on('exit', () => {
    if (shared === entry) shared = undefined;
  });
  // Never what keeps a worker process alive that is otherwise done, once warmed: a process that exits
  // while the thread is inside zlib can abort (see `end`), so an exit waits for the warm-up (~50-100 ms).
  thread.on('message', (m: HelperMessage) => {
    if (m.warm && !entry.lent) thread.unref();
  });
  idleFrom(entry);
}

function idleFrom(entry: Shared): void {
  clearTimeout(entry.idle);
  entry.idle = setTimeout(() => end(entry), IDLE_MS).unref();
}

/**
 * Ends the helper: asked to stop, not terminated. Terminating a worker thread while it is inside zlib
 * (between creating an inflate handle and initialising it) aborts the whole process with Node's
 * "close before init" assertion, seen in CI when a failed restore ended a helper mid-job. The thread
 * stops between jobs; a job in flight was cut short by its caller ({@link eachBlob}). Terminated only if
 * it has not ended after {@link STOP_GRACE_MS}.
 */
function end(entry: Shared): void {
  clearTimeout(entry.idle);
  if (shared === entry) shared = undefined;
  entry.thread.postMessage({ stop: true });
  entry.thread.unref();
  setTimeout(() => void entry.thread.terminate().catch(() => {}), STOP_GRACE_MS).unref();
}

/** How long an ended helper may take to stop by itself (its last blob may be a large one). */
const STOP_GRACE_MS = 60_000;

/**
 * Lends the helper thread to one restore (starting it when it is not running), or returns undefined when
 * another restore has it or threads cannot start here: that restore reads its blobs alone.
 */
export function lendHelper(): Helper | undefined {
  startHelper();
  const entry = shared;
  if (!entry || entry.lent) return undefined;
  entry.lent = true;
  clearTimeout(entry.idle);
  // While lent, a restore may wait on nothing but its messages: an unref'd thread would let a process with
  // nothing else to do (a CLI, a test) exit in the middle of the restore.
  entry.thread.ref();
  return {
    thread: entry.thread,
    online: entry.online,
    discard: () => end(entry),
    giveBack: () => {
      entry.lent = false;
      entry.thread.unref();
      if (shared === entry) idleFrom(entry);
    },
  };
}

/**
 * Reads the loose blobs `ids` of `gitDir` and hands each to `use` (on this thread, in no fixed order, each
 * once). With a helper and at least {@link HELPER_MIN_BLOBS} ids, this thread and the helper each claim the
 * next id not taken; otherwise this thread reads them all. Throws what either thread failed at (the
 * helper's failures as an Error with its message). Yields to the event loop every {@link BATCH} blobs.
 * Returns how many of the blobs the helper read.
 */
export async function eachBlob(
  gitDir: string,
  ids: readonly string[],
  helper: Helper | undefined,
  use: (index: number, content: Buffer) => void,
): Promise<number> {
  const reader = new BlobReader(gitDir);
  const next = new Int32Array(new SharedArrayBuffer(4));
  const sent: HelperMessage[] = [];
  let helperDone = true;
  let wake: (() => void) | undefined;
  const onMessage = (m: HelperMessage) => {
    sent.push(m);
    wake?.();
  };
  const onFailure = (err: unknown) =>
    onMessage({ error: `the restore's helper thread failed: ${String(err)}` });
  const onExit = (code: number) =>
    onMessage({ error: `the restore's helper thread ended (exit code ${code})` });
  const thread = ids.length >= HELPER_MIN_BLOBS ? helper?.thread : undefined;
  if (thread) {
    helperDone = false;
    thread.on('message', onMessage);
    thread.on('error', onFailure);
    thread.on('exit', onExit);
    thread.postMessage({ gitDir, ids, next });
  }
  let byHelper = 0;
  try {
    let handled = 0;
    let claiming = true;
    // Until every blob is handled and the helper said it is done (its last message may come after this
    // thread took the last blobs: a helper given back with a job in flight would be ended).
    while (handled < ids.length || !helperDone) {
      for (const m of sent.splice(0)) {
        if (m.error) throw new Error(m.error);
        const blobs = m.blobs ?? [];
        for (let k = 0; k + 1 < blobs.length; k += 2) {
          const content = blobs[k + 1] as Uint8Array;
          use(blobs[k] as number, Buffer.from(content.buffer, content.byteOffset, content.byteLength));
          handled++;
          byHelper++;
        }
        if (m.done) helperDone = true;
      }
      for (let k = 0; claiming && k < BATCH; k++) {
        const i = Atomics.add(next, 0, 1);
        if (i >= ids.length) {
          claiming = false;
          break;
        }
        use(i, reader.read(ids[i]!));
        handled++;
      }
      if (handled >= ids.length && helperDone) break;
      if (!claiming && helperDone) throw new Error('the helper thread ended before sending every blob');
      // Waiting for the helper once nothing is left to claim; otherwise a turn of the event loop, in which
      // its messages (and everything else the worker does) get their turn.
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (claiming || sent.length > 0) setImmediate(resolve);
      });
      wake = undefined;
    }
    return byHelper;
  } finally {
    // A job it was sent and did not finish would keep it claiming and sending: it goes, and the next
    // restore starts another.
    if (thread && !helperDone) {
      // Nothing left to claim: the helper stops after the blob it is reading.
      Atomics.store(next, 0, ids.length);
      helper?.discard();
    }
    if (thread) {
      thread.off('message', onMessage);
      thread.off('error', onFailure);
      thread.off('exit', onExit);
    }
  }
}
