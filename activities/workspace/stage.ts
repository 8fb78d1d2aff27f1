/**
 * Staging the work tree into the shadow index at a cost proportional to what changed.
 *
 * Git's own `add --all` lstat()s every file to find what changed, and `find` (./exact) lstat()s every file
 * again for the scan. Here the scan's `find` also prints each file's stat key (inode, size, mtime, ctime),
 * and a stat cache next to the index (`<git dir>/orchestrator/index-stat`) remembers, for every path the
 * index holds, the key it had and the blob git indexed. So one `find` tells what changed since git last
 * indexed the tree, and only those paths are handed to `git update-index` and listed back with
 * `git ls-files`: gates, artifact checks and commits then need no walk of their own and no full listing.
 *
 * A few changed paths (up to 256, each up to 8 MB) are not handed to git at all: their blobs are written
 * here, and the snapshot's trees are computed from the cache (./objects), so a phase that changed ten
 * files runs no git process. Git's index is then left behind (it still describes an earlier tree); the
 * cache, valid only against that very index file, is what the next staging trusts. Whatever else writes
 * the index (a restore, `git add` of a full staging) invalidates it, and the next staging rebuilds it.
 *
 * The cache is trusted only while the index file is the one it was written against (a restore, a fork or
 * any other writer of the index makes the next staging a full one, which rebuilds it), and only for
 * entries changed well before the walk that recorded them: a file rewritten within the same timestamp
 * tick keeps its stat key, so such "racy" entries are handed to git again (git checks them by content).
 * Workspaces holding nested repositories are staged fully every time (./exact): no cache.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { escapePath, glob } from 'tinyglobby';
import {
  modesObject,
  scanTree,
  stageExact,
  type ExactState,
  type FoundFile,
  type WorkspaceScan,
} from './exact';
import { blobId, hashBuffer, hashFile, mapLimit, rememberHash } from './hashing';
import { runGit, STATE_DIR } from './git';
import { writeObject } from './objects';
import { pace, readSmallSync } from './small';
import { TreeIndex } from './trees';

/** One workspace entry; `path` is relative, with `/`. */
export interface WorkspaceEntry {
  path: string;
  /** `file`: a regular file; `symlink`: a symbolic link (never followed); `other`: not from the index. */
  kind: 'file' | 'symlink' | 'other';
  /**
   * Git blob id of a regular file's content as the index holds it. Absent for `other`, and for a file
   * changed since git last indexed it when the listing was taken without staging.
   */
  blob?: string;
}

export interface WorkspaceListing {
  entries: WorkspaceEntry[];
  /** True when the listing came from the shadow index (blob ids are present). */
  indexed: boolean;
}

const MODE_SYMLINK = '120000';
const MODE_GITLINK = '160000';

/**
 * An entry changed this close to (or after) the walk that recorded it is handed to git again, which
 * checks it by content: a later rewrite within the same timestamp tick would keep its stat key. Files get
 * their times from the kernel's coarse clock (a tick of at most 10 ms); on a file system that keeps whole
 * seconds (no file shows a fraction), a second.
 */
export const RACY_MS = 100;
/** {@link RACY_MS} on a file system that keeps whole seconds. */
export const RACY_COARSE_MS = 2_000;
const CACHE_FILE = 'index-stat';
const CACHE_VERSION = 'orchestrator index-stat 2';

/** Walks the tree with a glob (no shadow repository, or inside a nested repository). */
export async function walk(root: string, under?: string): Promise<WorkspaceEntry[]> {
  const found = await glob(under ? `${escapePath(under)}/**` : '**', {
    cwd: root,
    dot: true,
    onlyFiles: true,
    followSymbolicLinks: false,
    ignore: [`${STATE_DIR}/**`, '**/.git/**'],
    expandDirectories: false,
  });
  return found.map((p) => ({ path: p, kind: 'other' as const }));
}

/** Parses `git ls-files -s -z`: `<mode> <blob> <stage>\t<path>\0`. */
export function parseLsFiles(out: string): { path: string; mode: string; blob: string }[] {
  const rows: { path: string; mode: string; blob: string }[] = [];
  for (const rec of out.split('\0')) {
    if (!rec) continue;
    const tab = rec.indexOf('\t');
    const [mode, blob] = rec.slice(0, tab).split(' ');
    if (tab < 0 || !mode || !blob) continue;
    rows.push({ path: rec.slice(tab + 1), mode, blob });
  }
  return rows;
}

/** What the stat cache remembers of one indexed path. */
export interface Known {
  key: string;
  blob: string;
  kind: 'file' | 'symlink';
}

export interface StatCache {
  /** The index file the cache describes (inode, size, mtime, ctime), `none` when there is none. */
  index: string;
  /** The tree id of that index, when a snapshot wrote it. */
  tree?: string;
  /** When the walk that recorded the keys began (ms). */
  walkedMs: number;
  known: Map<string, Known>;
}

function cacheFile(gitDir: string): string {
  return path.join(gitDir, 'orchestrator', CACHE_FILE);
}

export async function indexKey(gitDir: string): Promise<string> {
  try {
    const st = await fs.stat(path.join(gitDir, 'index'), { bigint: true });
    return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return 'none';
  }
}

/**
 * The caches this process last read or wrote, by file, with the file's stat key: the gates and the
 * checkpoint of a phase read the same cache, and parsing 10,000 entries again cost more than the walk.
 * A few workspaces at a time: a worker serves many runs, and each cache holds every path of its tree.
 * `clean`: the file parsed whole (no torn patch at its end), so a patch may be appended to it; `bytes` and
 * `baseBytes`: its size, and the size it had when last written whole.
 */
interface Memo {
  stat: string;
  cache: StatCache;
  clean: boolean;
  bytes: number;
  baseBytes: number;
}
const MEMO = new Map<string, Memo>();
const MEMO_MAX = 8;

async function fileKey(file: string): Promise<string | undefined> {
  return (await fileStat(file))?.key;
}

async function fileStat(file: string): Promise<{ key: string; size: number } | undefined> {
  try {
    const st = await fs.stat(file, { bigint: true });
    return { key: `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, size: Number(st.size) };
  } catch {
    return undefined;
  }
}

function memoize(file: string, memo: Memo | undefined): void {
  MEMO.delete(file);
  if (memo === undefined) return;
  MEMO.set(file, memo);
  while (MEMO.size > MEMO_MAX) MEMO.delete(MEMO.keys().next().value!);
}

/**
 * Looks handed from one activity to the next of the same phase, by workspace: the gates walk the tree and
 * stage what changed, and the checkpoint right after them commits what the gates judged instead of walking
 * the 10,000-file tree again (the walk and its parse were most of a checkpoint). Taken once, only while the
 * shadow index and the stat cache are still the ones that look left behind (a restore, a fork or any
 * other staging in between rewrites one of them) and only within {@link SHARED_LOOK_MAX_MS}: a change made
 * between the two by anything but the run (the run's agents have ended by then) lands in the next
 * checkpoint instead, as the stat cache, which recorded the keys the walk saw, then shows it as changed.
 */
const SHARED = new Map<string, { staging: Staging; at: number; cache: string; index: string }>();
/** A look older than this is not taken: the taker walks again. */
export const SHARED_LOOK_MAX_MS = 30_000;

/**
 * Offers a look for the next activity on the same workspace to take ({@link takeLook}). The caller vouches
 * that nothing it ran since the look changed the tree (the gates offer only when no command ran after it).
 */
export async function shareLook(staging: Staging): Promise<void> {
  SHARED.delete(staging.root);
  if (!staging.track || staging.dirty.length > 0) return;
  const [cache, index] = await Promise.all([fileKey(cacheFile(staging.gitDir)), indexKey(staging.gitDir)]);
  if (cache === undefined || index !== staging.track.index) return;
  SHARED.set(staging.root, { staging, at: Date.now(), cache, index });
  while (SHARED.size > MEMO_MAX) SHARED.delete(SHARED.keys().next().value!);
}

/** Forgets the look offered for a workspace (a restore changes the tree). */
export function forgetLook(root: string): void {
  SHARED.delete(root);
}

/** The look offered for `root` ({@link shareLook}), if still valid; taken once. */
export async function takeLook(gitDir: string, root: string): Promise<Staging | undefined> {
  const offered = SHARED.get(root);
  SHARED.delete(root);
  if (!offered || offered.staging.gitDir !== gitDir || Date.now() - offered.at > SHARED_LOOK_MAX_MS)
    return undefined;
  const [cache, index] = await Promise.all([fileKey(cacheFile(gitDir)), indexKey(gitDir)]);
  return cache === offered.cache && index === offered.index ? offered.staging : undefined;
}

/**
 * The cache file: a header line, then `path\0key\0blob\0` per entry (kind is the key's first letter), then
 * patches appended by later stagings ({@link writeCache}), each `\0<index> <walkedMs> <tree> <count>\0P\0`
 * (a record with an empty path) and `count` records, a removed path's with an empty key and blob. A patch's
 * header replaces the file header's index, walk time and tree. A patch cut short (a worker killed while
 * appending) and anything after it are ignored: the cache is then the one before it, whose keys for the
 * paths the patch changed no longer match the files, so the next look sees them as changed again.
 */
export async function readCache(gitDir: string): Promise<StatCache | undefined> {
  const file = cacheFile(gitDir);
  const stat = await fileStat(file);
  if (stat === undefined) return undefined;
  const memo = MEMO.get(file);
  if (memo?.stat === stat.key) return memo.cache;
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = parseCache(text);
  if (!parsed) return undefined;
  memoize(file, {
    stat: stat.key,
    cache: parsed.cache,
    clean: parsed.clean && Buffer.byteLength(text) === stat.size,
    bytes: stat.size,
    baseBytes: parsed.baseBytes,
  });
  return parsed.cache;
}

/** Parses a cache file's text (see {@link readCache}); undefined when its header is not this version's. */
export function parseCache(
  text: string,
): { cache: StatCache; clean: boolean; baseBytes: number } | undefined {
  const nl = text.indexOf('\n');
  const head = text.slice(0, nl).split(' | ');
  const [version, index, walked, tree] = head;
  if (nl < 0 || version !== CACHE_VERSION || !index || !walked || !tree) return undefined;
  const cache: StatCache = { index, walkedMs: Number(walked), known: new Map() };
  if (tree !== '-') cache.tree = tree;
  const { known } = cache;
  const parts = text.slice(nl + 1).split('\0');
  // Only parts followed by a NUL are whole: the last one is what follows the last NUL.
  const whole = parts.length - 1;
  let i = 0;
  for (; i + 3 <= whole && parts[i] !== ''; i += 3) {
    const key = parts[i + 1]!;
    known.set(parts[i]!, { key, blob: parts[i + 2]!, kind: key.startsWith('l') ? 'symlink' : 'file' });
  }
  let baseBytes = nl + 1;
  for (let j = 0; j < i; j++) baseBytes += Buffer.byteLength(parts[j]!) + 1;
  let clean = true;
  while (i < whole) {
    const [pIndex, pWalked, pTree, pCount] = (parts[i + 1] ?? '').split(' ');
    const count = Number(pCount);
    if (
      parts[i] !== '' ||
      parts[i + 2] !== 'P' ||
      !pIndex ||
      !pTree ||
      !Number.isFinite(Number(pWalked)) ||
      !Number.isInteger(count) ||
      count < 0 ||
      i + 3 + 3 * count > whole
    ) {
      clean = false;
      break;
    }
    for (let r = i + 3; r < i + 3 + 3 * count; r += 3) {
      const key = parts[r + 1]!;
      if (key === '') known.delete(parts[r]!);
      else known.set(parts[r]!, { key, blob: parts[r + 2]!, kind: key.startsWith('l') ? 'symlink' : 'file' });
    }
    cache.index = pIndex;
    cache.walkedMs = Number(pWalked);
    if (pTree === '-') delete cache.tree;
    else cache.tree = pTree;
    i += 3 + 3 * count;
  }
  if (i !== whole || parts[whole] !== '') clean = false;
  return { cache, clean, baseBytes };
}

/** Patches appended beyond this share of the file's whole size make the next write a whole one again. */
const PATCH_GROWTH = 0.5;

/**
 * Writes the cache for the index as it is now; returns the index key it was written against. `known` is
 * kept (memoized) as it is. With `changed`, the paths of `known` changed (patched in place by the caller,
 * see {@link patchKnown}) since this process last read or wrote the same map: then only those are appended
 * as a patch, when the file is still the one memoized and parsed whole; otherwise the file is rewritten
 * whole (to a temporary file renamed into place).
 */
export async function writeCache(
  gitDir: string,
  walkedMs: number,
  known: Map<string, Known>,
  tree?: string,
  changed?: Iterable<string>,
): Promise<string> {
  const file = cacheFile(gitDir);
  const memo = MEMO.get(file);
  // Whatever happens below, the memo no longer describes the file until it is recorded again.
  MEMO.delete(file);
  const index = await indexKey(gitDir);
  const cache: StatCache = { index, walkedMs, known, ...(tree ? { tree } : {}) };
  if (changed && memo && memo.clean && memo.cache.known === known) {
    const paths = [...changed];
    const chunks = [`\0${index} ${walkedMs} ${tree ?? '-'} ${paths.length}\0P\0`];
    for (const p of paths) {
      const k = known.get(p);
      chunks.push(k ? `${p}\0${k.key}\0${k.blob}\0` : `${p}\0\0\0`);
    }
    const patch = chunks.join('');
    const bytes = memo.bytes + Buffer.byteLength(patch);
    const now = await fileStat(file);
    if (now?.key === memo.stat && bytes - memo.baseBytes <= PATCH_GROWTH * memo.baseBytes) {
      await fs.appendFile(file, patch);
      const after = await fileStat(file);
      if (after?.size === bytes)
        memoize(file, { stat: after.key, cache, clean: true, bytes, baseBytes: memo.baseBytes });
      return index;
    }
  }
  const chunks = [`${CACHE_VERSION} | ${index} | ${walkedMs} | ${tree ?? '-'}\n`];
  for (const [p, k] of known) chunks.push(`${p}\0${k.key}\0${k.blob}\0`);
  const text = chunks.join('');
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${randomUUID().slice(0, 8)}`;
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
  const after = await fileStat(file);
  const bytes = Buffer.byteLength(text);
  if (after?.size === bytes) memoize(file, { stat: after.key, cache, clean: true, bytes, baseBytes: bytes });
  return index;
}

async function dropCache(gitDir: string): Promise<void> {
  MEMO.delete(cacheFile(gitDir));
  await fs.rm(cacheFile(gitDir), { force: true });
}

/**
 * Whether a file's index entry is known to be current: its stat key is the one recorded, and it changed
 * long enough before the walk that recorded it (`walkedMs`) that no later write can have kept that key.
 * `fine`: the file system keeps fractions of a second.
 */
export function isSettled(
  recordedKey: string,
  now: { key: string; changedMs: number },
  walkedMs: number,
  fine: boolean,
): boolean {
  return recordedKey === now.key && now.changedMs < walkedMs - (fine ? RACY_MS : RACY_COARSE_MS);
}

/**
 * The work tree as seen by one walk, possibly with changes git has not indexed yet (`dirty`): then the
 * listing has no blob for them, and {@link stageDirty} (or the snapshot, which calls it) hands them to git.
 */
export interface Staging {
  gitDir: string;
  root: string;
  scan: WorkspaceScan;
  exact: ExactState;
  listing: WorkspaceListing;
  /** Paths (sorted) whose index entry may be stale: changed, new or deleted. */
  dirty: string[];
  /** The index's tree id, when the stat cache knows it and nothing is dirty (no `write-tree` needed). */
  tree?: string;
  /** What the stat cache is rebuilt from once git has indexed `dirty`; absent: no cache kept. */
  track?: { files: FoundFile[]; known: Map<string, Known>; walkedMs: number; index: string };
}

/** Blob id of a file's content or a link's target, read now (a small file with blocking calls: ./small). */
async function blobOf(file: string, kind: 'file' | 'symlink'): Promise<string | undefined> {
  try {
    if (kind === 'symlink') return blobId(Buffer.from(await fs.readlink(file, { encoding: 'buffer' })));
    await pace();
    const small = readSmallSync(file);
    if (small === 'link' || small === 'special') return undefined;
    const h = small === 'large' ? await hashFile(file) : hashBuffer(small);
    // Remembered for the artifact check, which asks for the sha256 of what git indexed.
    rememberHash(h.blob, h.blob, h.sha256, h.size);
    return h.blob || undefined;
  } catch {
    return undefined;
  }
}

/** Files hashed at once. */
const HASH_CONCURRENCY = 8;
/** Above this many changed paths git stages them (`update-index`) instead of each being stored here. */
const HASH_HERE_MAX = 256;
/** A changed file larger than this is stored by git (read whole here, it would sit in memory at once). */
const STORE_HERE_MAX_BYTES = 8 * 1024 * 1024;

/** The size field of a stat key (`<type><bits>:<inode> <size>:<mtime>:<ctime>`, see ./exact). */
function keySize(key: string): number {
  return Number(key.split(':')[1]?.split(' ')[1] ?? NaN);
}

/** Git's mode for a remembered entry: the key's first letter and permission bits tell it. */
export function gitModeOf(k: Pick<Known, 'key' | 'kind'>): '100644' | '100755' | '120000' {
  if (k.kind === 'symlink') return '120000';
  const bits = parseInt(k.key.slice(1, k.key.indexOf(':')), 8);
  return bits & 0o100 ? '100755' : '100644';
}

/**
 * Stores a changed file's content (or a link's target) as a loose object, as `update-index` would, and
 * returns its blob id; undefined when it vanished meanwhile.
 */
async function storeBlob(
  gitDir: string,
  file: string,
  kind: 'file' | 'symlink',
): Promise<string | undefined> {
  let content: Buffer;
  try {
    if (kind === 'symlink') {
      content = Buffer.from(await fs.readlink(file, { encoding: 'buffer' }));
    } else {
      // A small file is read with blocking calls (./small), as its object is then written.
      await pace();
      const small = readSmallSync(file);
      // No longer what the walk saw (a link or a fifo now): left out, as a vanished file is; the next look
      // sees what it is then.
      if (small === 'link' || small === 'special') return undefined;
      content = small === 'large' ? await fs.readFile(file) : small;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Gone, or no longer what the walk saw (a directory now): git's --remove/--replace would drop it too.
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'EINVAL') return undefined;
    throw err;
  }
  const blob = await writeObject(gitDir, 'blob', content);
  if (kind === 'file') {
    // Remembered for the artifact check, which asks for the sha256 of what was staged.
    rememberHash(blob, blob, createHash('sha256').update(content).digest('hex'), content.length);
  }
  return blob;
}

/**
 * Looks at the work tree: one `find`, compared with the stat cache. With a valid cache (the common case)
 * no git process runs here and `dirty` is what changed; otherwise (first staging, after a restore, nested
 * repositories, no GNU find) the whole tree is staged now, as `git add --all` does it, and `dirty` is empty.
 * A file whose key is unchanged but which changed too close to the walk that recorded it is read here
 * and compared by content (git's own answer to racy entries), so it costs no git process.
 */
export async function look(gitDir: string, root: string): Promise<Staging> {
  const [tree, cache, index] = await Promise.all([scanTree(root), readCache(gitDir), indexKey(gitDir)]);
  const { scan, files, startedMs: walkedMs } = tree;
  if (!files || scan.nestedRepos.length > 0 || !cache || cache.index !== index) {
    return stageFully(gitDir, root, scan, files, walkedMs);
  }
  const fine = files.some((f) => f.changedMs % 1000 !== 0);
  const racy = files.filter((f) => {
    const k = cache.known.get(f.path);
    return k !== undefined && k.key === f.key && !isSettled(k.key, f, cache.walkedMs, fine);
  });
  const verified = new Set<string>();
  await mapLimit(racy, HASH_CONCURRENCY, async (f) => {
    if ((await blobOf(path.join(root, f.path), f.kind)) === cache.known.get(f.path)?.blob)
      verified.add(f.path);
  });
  const entries: WorkspaceEntry[] = [];
  const dirty: string[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    seen.add(f.path);
    const k = cache.known.get(f.path);
    if (k && (verified.has(f.path) || isSettled(k.key, f, cache.walkedMs, fine))) {
      entries.push({ path: f.path, kind: k.kind, ...(k.kind === 'file' ? { blob: k.blob } : {}) });
    } else {
      dirty.push(f.path);
      entries.push({ path: f.path, kind: f.kind });
    }
  }
  for (const p of cache.known.keys()) if (!seen.has(p)) dirty.push(p);
  dirty.sort();
  // Racy entries this walk saw with their recorded key and whose content proved the recorded blob are
  // recorded again against this walk, so they stop being racy (and read) once they settle: safe, as every
  // entry's key was seen by this walk, and a rewrite after it would show a later ctime.
  if (dirty.length === 0 && verified.size > 0)
    await writeCache(gitDir, walkedMs, cache.known, cache.tree, []);
  return {
    gitDir,
    root,
    scan,
    exact: { nested: [], ...modesObject(scan) },
    listing: { entries, indexed: true },
    dirty,
    ...(dirty.length === 0 && cache.tree ? { tree: cache.tree } : {}),
    track: { files, known: cache.known, walkedMs, index },
  };
}

/** The full staging: `git add --all` (./exact), the whole index listed, the stat cache rebuilt. */
async function stageFully(
  gitDir: string,
  root: string,
  walked: WorkspaceScan,
  files: FoundFile[] | undefined,
  walkedMs: number,
): Promise<Staging> {
  const { scan, exact } = await stageExact(gitDir, root, walked);
  const rows = parseLsFiles((await runGit(gitDir, root, ['ls-files', '--stage', '-z'])).stdout);
  const entries: WorkspaceEntry[] = [];
  for (const row of rows) {
    if (row.mode === MODE_GITLINK) entries.push(...(await walk(root, row.path)));
    else if (row.mode === MODE_SYMLINK) entries.push({ path: row.path, kind: 'symlink' });
    else entries.push({ path: row.path, kind: 'file', blob: row.blob });
  }
  const staging: Staging = { gitDir, root, scan, exact, listing: { entries, indexed: true }, dirty: [] };
  if (files && scan.nestedRepos.length === 0) {
    const known = merged(files, new Map(), new Set(files.map((f) => f.path)), byPath(rows));
    const index = await writeCache(gitDir, walkedMs, known);
    staging.track = { files, known, walkedMs, index };
  } else {
    await dropCache(gitDir);
  }
  return staging;
}

function byPath(rows: readonly { path: string; mode: string; blob: string }[]): Map<string, Indexed> {
  const out = new Map<string, Indexed>();
  for (const r of rows) {
    if (r.mode !== MODE_GITLINK)
      out.set(r.path, { blob: r.blob, kind: r.mode === MODE_SYMLINK ? 'symlink' : 'file' });
  }
  return out;
}

/** What the index holds for a path: its blob and whether it is a link. */
interface Indexed {
  blob: string;
  kind: 'file' | 'symlink';
}

/** The cache after git indexed `dirty`: keys from the walk, blobs from the cache or from `indexed`. */
function merged(
  files: readonly FoundFile[],
  known: ReadonlyMap<string, Known>,
  dirty: ReadonlySet<string>,
  indexed: ReadonlyMap<string, Indexed>,
): Map<string, Known> {
  const out = new Map<string, Known>();
  for (const f of files) {
    if (!dirty.has(f.path)) {
      const k = known.get(f.path);
      if (k) out.set(f.path, k);
      continue;
    }
    const now = indexed.get(f.path);
    // Not in the index after all (it vanished meanwhile, or is a gitlink): not remembered, so looked at again.
    if (now) out.set(f.path, { key: f.key, ...now });
  }
  return out;
}

/**
 * Hands the dirty paths to git (`update-index`, which adds, updates and removes exactly those) and learns
 * their blobs: hashed here when they are few (a read of files that just changed), else from the index
 * (`ls-files`). Then the listing has every blob, and the stat cache describes the index as it now is.
 */
export async function stageDirty(staging: Staging): Promise<void> {
  if (staging.dirty.length === 0) return;
  const { gitDir, root } = staging;
  const dirty = new Set(staging.dirty);
  // The walk's view of the dirty paths only (a few): no map of every path.
  const found = new Map<string, FoundFile>();
  if (staging.track) for (const f of staging.track.files) if (dirty.has(f.path)) found.set(f.path, f);
  const kinds = new Map<string, WorkspaceEntry['kind']>();
  for (const e of staging.listing.entries) if (dirty.has(e.path)) kinds.set(e.path, e.kind);
  let indexed: Map<string, Indexed>;
  const small =
    staging.track !== undefined &&
    staging.dirty.length <= HASH_HERE_MAX &&
    staging.dirty.every((p) => !(keySize(found.get(p)?.key ?? '') > STORE_HERE_MAX_BYTES));
  if (small) {
    // Stored here, and the tree written here too ({@link indexTree}): git's index is left as it was, and
    // the stat cache (which no longer describes it) is what the next staging trusts.
    indexed = new Map();
    await mapLimit(staging.dirty, HASH_CONCURRENCY, async (p) => {
      const kind = kinds.get(p);
      if (kind !== 'file' && kind !== 'symlink') return;
      const blob = await storeBlob(gitDir, path.join(root, p), kind);
      if (blob) indexed.set(p, { blob, kind });
    });
  } else {
    await updateIndex(staging);
    indexed = byPath(parseLsFiles((await runGit(gitDir, root, ['ls-files', '--stage', '-z'])).stdout));
  }
  const entries: WorkspaceEntry[] = [];
  for (const e of staging.listing.entries) {
    const now = dirty.has(e.path) ? indexed.get(e.path) : undefined;
    if (!dirty.has(e.path)) entries.push(e);
    else if (now?.kind === 'symlink') entries.push({ path: e.path, kind: 'symlink' });
    else if (now) entries.push({ path: e.path, kind: 'file', blob: now.blob });
  }
  staging.listing = { entries, indexed: true };
  staging.dirty = [];
  delete staging.tree;
  if (staging.track) {
    const { known, walkedMs } = staging.track;
    // The cache's own map, changed in place at the dirty paths only (what `merged` makes of it: the rest
    // of the walk's files kept their recorded entries), with its tree index; the file gets a patch.
    patchKnown(known, dirty, found, indexed);
    // The tree too (a few ms): the checkpoint after the gates then finds it in the cache.
    const tree = await writeTrees(gitDir, known);
    staging.track.index = await writeCache(gitDir, walkedMs, known, tree, dirty);
    staging.tree = tree;
  }
}

/**
 * Changes `known` at `dirty` to what git indexed there (`indexed`) with the key the walk saw (`found`):
 * a path git did not index (gone, or not a file or link) is dropped. The map's tree index, if it has one,
 * changes with it, at once (no await in between).
 */
export function patchKnown(
  known: Map<string, Known>,
  dirty: Iterable<string>,
  found: ReadonlyMap<string, Pick<FoundFile, 'key'>>,
  indexed: ReadonlyMap<string, Indexed>,
): void {
  const trees = TREES.get(known);
  for (const p of dirty) {
    const f = found.get(p);
    const now = indexed.get(p);
    if (f && now) {
      const k: Known = { key: f.key, ...now };
      known.set(p, k);
      trees?.set(p, { mode: gitModeOf(k), id: k.blob });
    } else {
      known.delete(p);
      trees?.remove(p);
    }
  }
}

async function updateIndex(staging: Staging): Promise<void> {
  await runGit(
    staging.gitDir,
    staging.root,
    ['update-index', '--add', '--remove', '--replace', '-z', '--stdin'],
    {
      input: staging.dirty.map((p) => `${p}\0`).join(''),
    },
  );
}

/**
 * The index's tree (`write-tree`, unless the stat cache knows it), recorded in the stat cache: a later
 * snapshot of an unchanged tree needs no git process at all.
 */
export async function indexTree(staging: Staging): Promise<string> {
  await stageDirty(staging);
  if (staging.tree) return staging.tree;
  const tree = staging.track
    ? await writeTrees(staging.gitDir, staging.track.known)
    : (await runGit(staging.gitDir, staging.root, ['write-tree'])).stdout.trim();
  staging.tree = tree;
  if (staging.track) {
    const { known, walkedMs } = staging.track;
    staging.track.index = await writeCache(staging.gitDir, walkedMs, known, tree, []);
  }
  return tree;
}

/**
 * The tree index of each stat cache map this process holds (./trees): a map patched in place
 * ({@link patchKnown}) carries it along, so a checkpoint recomputes only the folders it changed.
 */
const TREES = new WeakMap<ReadonlyMap<string, Known>, TreeIndex>();

/** The tree index of `known`, built from scratch when the map has none yet. */
function treesOf(known: ReadonlyMap<string, Known>): TreeIndex {
  let trees = TREES.get(known);
  if (!trees) {
    trees = new TreeIndex();
    for (const [p, k] of known) trees.set(p, { mode: gitModeOf(k), id: k.blob });
    TREES.set(known, trees);
  }
  return trees;
}

/**
 * Writes the tree of everything the stat cache knows (what `write-tree` makes of an index holding exactly
 * those entries) and returns its id. Only the folders changed since the map's previous tree are computed
 * again (./trees), and only new objects written.
 */
export async function writeTrees(gitDir: string, known: ReadonlyMap<string, Known>): Promise<string> {
  return treesOf(known).write(gitDir);
}
