/**
 * Small files read and written with blocking calls, paced so that the event loop still turns.
 *
 * A phase's gates and checkpoint read and write a few dozen small files: the changed files' content, the
 * blobs and trees of their folders, the files a validator checks. Each asynchronous call is a round trip
 * through libuv's thread pool (four threads, shared by every activity of the worker), and on this 2-core
 * machine under load such a round trip cost 1–5 ms where the call itself takes microseconds: on the
 * 10,000-file tree, staging ten changed files took 30–150 ms, reading the nine a validator checks 15–30 ms,
 * hashing nine racy ones 30–40 ms. The same work done with blocking calls takes a few ms.
 *
 * Blocking calls hold the worker's event loop (heartbeats, other activities, workflow tasks), so they are
 * kept to small files ({@link SMALL_FILE_BYTES}) and to stretches of at most {@link SLICE_MS}: callers
 * {@link pace} before each file, which yields to the event loop once a stretch has lasted that long. A
 * phase that changed ten thousand files then still lets everything else run every few ms.
 */
import fsSync from 'node:fs';

/** Files up to this size may be read or written with blocking calls. */
export const SMALL_FILE_BYTES = 256 * 1024;
/** The longest stretch of blocking calls between two turns of the event loop (ms). */
export const SLICE_MS = 8;

let stretchStart = performance.now();

/**
 * Resolves at once while the current stretch of blocking calls is shorter than {@link SLICE_MS}; after
 * that, on the event loop's next turn (and a new stretch starts).
 */
export async function pace(): Promise<void> {
  const now = performance.now();
  if (now - stretchStart < SLICE_MS) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  stretchStart = performance.now();
}

/**
 * What {@link readSmallSync} found instead of a small regular file: `large`, a regular file larger than
 * {@link SMALL_FILE_BYTES} (read it asynchronously); `special`, not a regular file (a fifo, a socket, a
 * device, a folder), which is never read; `link`, a symbolic link, which is never followed.
 */
export type NotSmall = 'large' | 'special' | 'link';

/**
 * The content of a small regular file, read with blocking calls: opened without following a final
 * symbolic link and without waiting (a fifo put where a file was would otherwise block the event loop
 * for good), then checked and read through the same descriptor. Throws as `fs` does for anything else
 * (ENOENT, ENOTDIR, EACCES).
 */
export function readSmallSync(file: string): Buffer | NotSmall {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fsSync.constants;
  let fd: number;
  try {
    fd = fsSync.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    // Linux says ELOOP for a final symbolic link under O_NOFOLLOW (some systems EMLINK).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') return 'link';
    throw err;
  }
  try {
    const st = fsSync.fstatSync(fd);
    if (!st.isFile()) return 'special';
    if (st.size > SMALL_FILE_BYTES) return 'large';
    // Read to the end, not to the size seen: a file still growing is read as it is now.
    return fsSync.readFileSync(fd);
  } finally {
    fsSync.closeSync(fd);
  }
}
