/**
 * Restoring a snapshot by writing only what differs from it.
 *
 * `git read-tree -u --reset` reads and rewrites the whole index and checks every path of the tree, and
 * `git clean` walks the tree again: on a 10,000-file workspace after 1,000 changed files that was most of
 * a rollback. Here one `find` (the walk every restore makes anyway) and the stat cache (./stage) tell
 * which files are still exactly what the cache recorded; the target tree is read in-process from its
 * loose objects, and only the paths whose content, kind or executable bit differ are written, the files
 * and folders the target does not have are removed. The stat cache then describes the restored tree, so
 * the next checkpoint stages only what the next agent changes.
 *
 * Exactness does not rest on the cache being complete: a file is kept only when its stat key is the one
 * recorded, settled (not racy, see ./stage) and recorded with the target's blob, kind and bits; every
 * other path of the target is written. When the shortcut cannot be taken (no valid cache, nested
 * repositories, an object git packed, a mode it cannot write) {@link restoreChanged} returns false before
 * touching anything, and the caller runs git's full restore; a failure half-way makes the caller do the
 * same, which is exact whatever this left behind.
 */
import fsSync, { type BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eachBlob, type Helper } from './blobs';
import type { TreeScan } from './exact';
import { mapLimit } from './hashing';
import { parseTree, readObject } from './objects';
import { gitModeOf, indexKey, isSettled, readCache, writeCache, type Known } from './stage';

/** Files removed at once. */
const WRITE_CONCURRENCY = 16;

/** A path of the target tree: git's mode and blob id. */
interface Wanted {
  mode: '100644' | '100755' | '120000';
  blob: string;
}

/** Every blob path of `tree` (recursively), or undefined when an object is not loose or a mode is unusual. */
export async function readTreePaths(gitDir: string, tree: string): Promise<Map<string, Wanted> | undefined> {
  const out = new Map<string, Wanted>();
  let usable = true;
  const visit = async (id: string, prefix: string): Promise<void> => {
    const obj = await readObject(gitDir, id);
    if (!obj || obj.type !== 'tree') {
      usable = false;
      return;
    }
    const subtrees: Promise<void>[] = [];
    for (const e of parseTree(obj.content)) {
      const rel = prefix + e.name;
      if (e.mode === '40000') subtrees.push(visit(e.id, `${rel}/`));
      else if (e.mode === '100644' || e.mode === '100755' || e.mode === '120000')
        out.set(rel, { mode: e.mode, blob: e.id });
      else usable = false; // a gitlink (160000): git's restore knows what to do with it
    }
    await Promise.all(subtrees);
  };
  await visit(tree, '');
  return usable ? out : undefined;
}

/** Git's mode of a target path: read from the tree, or from the stat cache's key. */
function modeOf(w: Wanted | Known): Wanted['mode'] {
  return 'mode' in w ? w.mode : gitModeOf(w);
}

/**
 * The stat key `find` prints for a path (./exact `FIND_FORMAT`: `%y%m:%i %s:%T@:%C@`), from lstat: GNU
 * find prints times as seconds and ten fractional digits (nanoseconds and a 0). Undefined for anything
 * but a file or symlink.
 */
export async function statKey(file: string): Promise<string | undefined> {
  return statKeyOf(await fs.lstat(file, { bigint: true }));
}

function statKeyOf(st: BigIntStats): string | undefined {
  const type = st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : undefined;
  if (!type) return undefined;
  const time = (ns: bigint) => `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}0`;
  const bits = (Number(st.mode) & 0o7777).toString(8);
  return `${type}${bits}:${st.ino} ${st.size}:${time(st.mtimeNs)}:${time(st.ctimeNs)}`;
}

function parents(rel: string, into: Set<string>): void {
  for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
    const dir = rel.slice(0, i);
    if (into.has(dir)) return;
    into.add(dir);
  }
}

/**
 * Makes the workspace `root` hold exactly the files of `tree` (and the folders `emptyDirs` names, which
 * the caller creates), writing only what differs, and records the result in the stat cache. `walked` is
 * the caller's own walk, taken under the workspace lock just before, after which the caller unlocked any
 * read-only folder. Returns false, having changed nothing, when the shortcut does not apply. Modes beyond
 * the executable bit are the caller's (./exact `fixModes`).
 */
export async function restoreChanged(args: {
  gitDir: string;
  root: string;
  tree: string;
  walked: TreeScan;
  emptyDirs: readonly string[];
  /** A helper thread reading blobs beside this one (./blobs), started before the walk; not ended here. */
  helper?: Helper;
}): Promise<boolean> {
  const { gitDir, root, walked } = args;
  const { files, dirs, others } = walked;
  if (!files || !dirs || !others || walked.scan.nestedRepos.length > 0) return false;
  const [cache, index] = await Promise.all([readCache(gitDir), indexKey(gitDir)]);
  if (!cache || cache.index !== index) return false;
  const fine = files.some((f) => f.changedMs % 1000 !== 0);
  // Back to the tree the cache describes (a rollback to the last checkpoint, the usual one): the cache
  // already knows every path's blob and mode, so the target tree is not read, nor copied.
  const same = cache.tree === args.tree;
  const wanted: ReadonlyMap<string, Wanted | Known> | undefined = same
    ? cache.known
    : await readTreePaths(gitDir, args.tree);
  if (!wanted) return false;

  const known = new Map<string, Known>();
  const remove: string[] = [];
  // Target paths not kept that are regular files now: the ones rewritten in place.
  const regular = new Set<string>();
  for (const f of files) {
    const w = wanted.get(f.path);
    if (!w) {
      remove.push(f.path);
      continue;
    }
    const k = cache.known.get(f.path);
    if (same) {
      // The target is the cache's own entry: the recorded key (which holds the kind and the bits), settled.
      if (k && isSettled(k.key, f, cache.walkedMs, fine)) known.set(f.path, k);
      else if (f.kind === 'file') regular.add(f.path);
      continue;
    }
    const mode = modeOf(w);
    const kind = mode === '120000' ? 'symlink' : 'file';
    // Kept only when the file is provably the target's: the recorded key, settled, with the target's
    // blob, kind and executable bit (read from the key the walk printed).
    if (
      k?.blob === w.blob &&
      k.kind === kind &&
      gitModeOf({ key: f.key, kind }) === mode &&
      f.kind === kind &&
      isSettled(k.key, f, cache.walkedMs, fine)
    ) {
      known.set(f.path, { key: f.key, blob: w.blob, kind });
    } else if (f.kind === 'file') regular.add(f.path);
  }
  const write: string[] = [];
  for (const p of wanted.keys()) if (!known.has(p)) write.push(p);

  // Folders the target has: parents of its files, and the empty ones it records (with their parents).
  const keepDirs = new Set<string>();
  for (const p of wanted.keys()) parents(p, keepDirs);
  for (const d of args.emptyDirs) {
    keepDirs.add(d);
    parents(d, keepDirs);
  }
  // Topmost folders the target does not have go whole (a folder where the target has a file, too).
  const gone = new Set(dirs.filter((d) => !keepDirs.has(d)));
  const topGone = [...gone].filter((d) => !hasParentIn(gone, d));
  await mapLimit(topGone, WRITE_CONCURRENCY, (d) =>
    fs.rm(path.join(root, d), { recursive: true, force: true }),
  );
  // Files and links the target does not have (one where the target has a folder, too), and fifos/sockets.
  await mapLimit([...remove, ...others], WRITE_CONCURRENCY, (p) =>
    fs.rm(path.join(root, p), { force: true }),
  );

  // Parents first (each once), then the files, each replacing whatever is there. A folder the walk saw,
  // and that was not removed above, is there already (if something replaced it since, a write below fails
  // and the caller's full restore decides).
  const present = new Set(dirs.filter((d) => !gone.has(d)));
  const needDirs = new Set<string>();
  for (const p of write) parents(p, needDirs);
  for (const d of [...needDirs].sort()) if (!present.has(d)) await mkdirExact(path.join(root, d));
  // Synchronous calls in batches, yielding between them (./blobs): a file costs several small system
  // calls, and each through the thread pool as a promise cost more than the call itself (1,000 files took
  // longer than git's whole restore). The blobs are read here and on the helper thread at once.
  // Whether every written path reads back with the mode the target records (a umask could drop the bit).
  let asRecorded = true;
  const umask = process.umask();
  await eachBlob(
    gitDir,
    write.map((p) => wanted.get(p)!.blob),
    args.helper,
    (i, content) => {
      const p = write[i]!;
      const w = wanted.get(p)!;
      const wmode = modeOf(w);
      const full = path.join(root, p);
      const kind = wmode === '120000' ? 'symlink' : 'file';
      // As git checks out: 0666 or 0777, less the umask.
      const mode = wmode === '100755' ? 0o777 : 0o666;
      let key = kind === 'file' && regular.has(p) ? overwriteSync(full, content, mode & ~umask) : undefined;
      if (key === undefined) {
        removeSync(full);
        if (kind === 'symlink') fsSync.symlinkSync(content, full);
        else fsSync.writeFileSync(full, content, { mode, flag: 'wx' });
        key = statKeyOf(fsSync.lstatSync(full, { bigint: true }));
      }
      if (key) known.set(p, { key, blob: w.blob, kind });
      if (!key || gitModeOf({ key, kind }) !== wmode) asRecorded = false;
    },
  );

  // The cache now describes the restored tree. Keys recorded by this walk (`startedMs`) are trusted only
  // for files changed well before it: the files written just now are checked by content at the next look.
  if (same && asRecorded && write.every((p) => known.has(p))) {
    // Back to the tree the cache described (a rollback to the last checkpoint): its map changes only at
    // the paths written (a new stat key, the same blob and mode), so it is changed in place there, its
    // tree index (./trees) stays true, and the file gets a patch instead of 10,000 entries again.
    for (const p of write) cache.known.set(p, known.get(p)!);
    await writeCache(gitDir, walked.startedMs, cache.known, args.tree, write);
    return true;
  }
  const ordered = new Map([...wanted.keys()].filter((p) => known.has(p)).map((p) => [p, known.get(p)!]));
  await writeCache(gitDir, walked.startedMs, ordered, ordered.size === wanted.size ? args.tree : undefined);
  return true;
}

/**
 * Rewrites a regular file in place and sets its bits to `mode`; returns its stat key (as
 * {@link statKey} reads it) when done, undefined, having written nothing, when it is not a regular file
 * with no other name. Git unlinks and creates instead; on ext4 with online discard (this machine) freeing
 * the old blocks and allocating new ones cost most of a restore (1,000 files: 2–3 s against 0.05–0.3 s in
 * place, when the new content is not shorter). Another name of the same file (a hard link, maybe to a file
 * outside the workspace) must not change with it, so nlink is checked on the open file itself; O_NOFOLLOW:
 * a link is never followed, O_NONBLOCK: a fifo never waits. Only the calls needed are made (the bits
 * changed only when they differ, the file cut only when it was longer): each costs more than the write of
 * a small file, and the key comes from the open file, not from another lookup of its path.
 */
function overwriteSync(full: string, content: Buffer, mode: number): string | undefined {
  let fd: number;
  try {
    const { O_WRONLY, O_NOFOLLOW, O_NONBLOCK } = fsSync.constants;
    fd = fsSync.openSync(full, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fsSync.fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) return undefined;
    if ((st.mode & 0o7777) !== mode) fsSync.fchmodSync(fd, mode);
    for (let at = 0; at < content.length;) at += fsSync.writeSync(fd, content, at, content.length - at, at);
    // After the write: blocks past the new end are freed only when the file got shorter.
    if (st.size > content.length) fsSync.ftruncateSync(fd, content.length);
    return statKeyOf(fsSync.fstatSync(fd, { bigint: true }));
  } finally {
    fsSync.closeSync(fd);
  }
}

/**
 * Removes whatever is at `full`: unlink first, as it is nearly always a file (rmSync would lstat it first,
 * a system call per written file), a whole folder only when that fails.
 */
function removeSync(full: string): void {
  try {
    fsSync.unlinkSync(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'EISDIR' && code !== 'EPERM') throw err;
    fsSync.rmSync(full, { recursive: true, force: true });
  }
}

/** Whether a parent folder of `rel` is in `dirs`. */
function hasParentIn(dirs: ReadonlySet<string>, rel: string): boolean {
  for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
    if (dirs.has(rel.slice(0, i))) return true;
  }
  return false;
}

/** mkdir, replacing a file or symlink in the way (the walk's removals took those already, barring races). */
async function mkdirExact(dir: string): Promise<void> {
  const st = await fs.lstat(dir).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) await fs.rm(dir, { force: true });
  await fs.mkdir(dir, { recursive: true });
}
