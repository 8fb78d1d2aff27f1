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
 * The cache is trusted only while the index file is the one it was written against (a restore, a fork or
 * any other writer of the index makes the next staging a full one, which rebuilds it), and only for
 * entries changed well before the walk that recorded them: a file rewritten within the same timestamp
 * tick keeps its stat key, so such "racy" entries are handed to git again (git checks them by content).
 * Workspaces holding nested repositories are staged fully every time (./exact): no cache.
 */
import { randomUUID } from 'node:crypto';
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
import { blobId, hashFile, mapLimit, rememberHash } from './hashing';
import { runGit, STATE_DIR } from './git';

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
const CACHE_VERSION = 'orchestrator index-stat 1';

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
interface Known {
  key: string;
  blob: string;
  kind: 'file' | 'symlink';
}

interface StatCache {
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

async function indexKey(gitDir: string): Promise<string> {
  try {
    const st = await fs.stat(path.join(gitDir, 'index'), { bigint: true });
    return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return 'none';
  }
}

/** Header line, then `path\0key\0blob\0` per entry (kind is the key's first letter). */
async function readCache(gitDir: string): Promise<StatCache | undefined> {
  let text: string;
  try {
    text = await fs.readFile(cacheFile(gitDir), 'utf8');
  } catch {
    return undefined;
  }
  const nl = text.indexOf('\n');
  const [version, index, walked, tree] = text.slice(0, nl).split(' | ');
  if (nl < 0 || version !== CACHE_VERSION || !index || !walked) return undefined;
  const known = new Map<string, Known>();
  const parts = text.slice(nl + 1).split('\0');
  for (let i = 0; i + 2 < parts.length; i += 3) {
    const key = parts[i + 1]!;
    known.set(parts[i]!, { key, blob: parts[i + 2]!, kind: key.startsWith('l') ? 'symlink' : 'file' });
  }
  return { index, walkedMs: Number(walked), known, ...(tree && tree !== '-' ? { tree } : {}) };
}

/** Writes the cache for the index as it is now; returns the index key it was written against. */
async function writeCache(
  gitDir: string,
  walkedMs: number,
  known: Map<string, Known>,
  tree?: string,
): Promise<string> {
  const index = await indexKey(gitDir);
  const chunks = [`${CACHE_VERSION} | ${index} | ${walkedMs} | ${tree ?? '-'}\n`];
  for (const [p, k] of known) chunks.push(`${p}\0${k.key}\0${k.blob}\0`);
  const file = cacheFile(gitDir);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${randomUUID().slice(0, 8)}`;
  await fs.writeFile(tmp, chunks.join(''));
  await fs.rename(tmp, file);
  return index;
}

async function dropCache(gitDir: string): Promise<void> {
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

/** Blob id of a file's content or a link's target, read now. */
async function blobOf(file: string, kind: 'file' | 'symlink'): Promise<string | undefined> {
  try {
    if (kind === 'symlink') return blobId(Buffer.from(await fs.readlink(file, { encoding: 'buffer' })));
    const h = await hashFile(file);
    // Remembered for the artifact check, which asks for the sha256 of what git indexed.
    rememberHash(h.blob, h.blob, h.sha256, h.size);
    return h.blob || undefined;
  } catch {
    return undefined;
  }
}

/** Files hashed at once. */
const HASH_CONCURRENCY = 8;
/** Above this many changed paths git lists the index instead of each being hashed here. */
const HASH_HERE_MAX = 256;

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
  const kinds = new Map(staging.listing.entries.map((e) => [e.path, e.kind]));
  let indexed: Map<string, Indexed>;
  if (staging.dirty.length <= HASH_HERE_MAX) {
    indexed = new Map();
    await mapLimit(staging.dirty, HASH_CONCURRENCY, async (p) => {
      const kind = kinds.get(p);
      if (kind !== 'file' && kind !== 'symlink') return;
      const blob = await blobOf(path.join(root, p), kind);
      if (blob) indexed.set(p, { blob, kind });
    });
    await updateIndex(staging);
  } else {
    await updateIndex(staging);
    indexed = byPath(parseLsFiles((await runGit(gitDir, root, ['ls-files', '--stage', '-z'])).stdout));
  }
  const dirty = new Set(staging.dirty);
  const entries: WorkspaceEntry[] = [];
  for (const e of staging.listing.entries) {
    const now = dirty.has(e.path) ? indexed.get(e.path) : undefined;
    if (!dirty.has(e.path)) entries.push(e);
    else if (now?.kind === 'symlink') entries.push({ path: e.path, kind: 'symlink' });
    else if (now) entries.push({ path: e.path, kind: 'file', blob: now.blob });
  }
  staging.listing = { entries, indexed: true };
  if (staging.track) {
    const { files, known, walkedMs } = staging.track;
    const next = merged(files, known, dirty, indexed);
    staging.track = { files, known: next, walkedMs, index: await writeCache(gitDir, walkedMs, next) };
  }
  staging.dirty = [];
  delete staging.tree;
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
  const tree = (await runGit(staging.gitDir, staging.root, ['write-tree'])).stdout.trim();
  staging.tree = tree;
  if (staging.track) {
    const { known, walkedMs } = staging.track;
    staging.track.index = await writeCache(staging.gitDir, walkedMs, known, tree);
  }
  return tree;
}
