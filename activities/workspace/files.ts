/**
 * The workspace's files as git's index of the shadow repository sees them, for gates, artifact checks and
 * manifests. Staging costs one `stat` per file plus a read of the files that changed (git keeps the
 * rest in its stat cache), so listing after a phase is proportional to what the phase changed, and every
 * regular file comes with its blob id: a content-addressed key that lets callers skip re-reading files
 * whose content they have judged or hashed before.
 *
 * `.orchestrator/` and `.git` directories are never listed: the index never holds them. Symbolic links
 * are listed as such (never followed); nested repositories' files are listed like any others (see
 * exact.ts), without their `.git`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import { escapePath, glob } from 'tinyglobby';
import { runGit, shadowGitDir, STATE_DIR } from './git';
import { withWorkspaceLock } from './lock';
import { stageExact } from './exact';
import { ensureRepo, isInitialized } from './snapshot';

/** One workspace entry; `path` is relative, with `/`. */
export interface WorkspaceEntry {
  path: string;
  /** `file`: a regular file; `symlink`: a symbolic link (never followed); `other`: not from the index. */
  kind: 'file' | 'symlink' | 'other';
  /** Git blob id of a regular file's content at listing time (absent for `other`). */
  blob?: string;
}

export interface WorkspaceListing {
  entries: WorkspaceEntry[];
  /** True when the listing came from the shadow index (blob ids are present). */
  indexed: boolean;
}

const MODE_SYMLINK = '120000';
const MODE_GITLINK = '160000';

/** Walks the tree with a glob (no shadow repository, or inside a nested repository). */
async function walk(root: string, under?: string): Promise<WorkspaceEntry[]> {
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

/**
 * Lists the workspace. With a shadow repository (or `create`, which initialises one) the work tree is
 * staged into the shadow index and the index is listed; without one, the tree is walked.
 */
export async function listWorkspace(
  workspace: string,
  opts: { create?: boolean } = {},
): Promise<WorkspaceListing> {
  const root = path.resolve(workspace);
  if (!opts.create && !(await isInitialized(shadowGitDir(root))))
    return { entries: await walk(root), indexed: false };
  return withWorkspaceLock(root, async () => (await stageAndList(root)).listing);
}

/**
 * Stages the work tree into the shadow index (initialising the repository) and lists the index. The
 * caller holds the workspace lock; `staged` can be handed to `snapshotLocked` to commit exactly this.
 */
export async function stageAndList(
  root: string,
): Promise<{ listing: WorkspaceListing; staged: Awaited<ReturnType<typeof stageExact>> }> {
  const { gitDir } = await ensureRepo(root);
  // Staging here is work the checkpoint would do next anyway; what it finds unchanged costs a stat.
  const staged = await stageExact(gitDir, root);
  const out = (await runGit(gitDir, root, ['ls-files', '--stage', '-z'])).stdout;
  const entries: WorkspaceEntry[] = [];
  for (const row of parseLsFiles(out)) {
    if (row.mode === MODE_GITLINK) entries.push(...(await walk(root, row.path)));
    else if (row.mode === MODE_SYMLINK) entries.push({ path: row.path, kind: 'symlink' });
    else entries.push({ path: row.path, kind: 'file', blob: row.blob });
  }
  return { listing: { entries, indexed: true }, staged };
}

/** A matcher for workspace-relative paths, dot files included, with tinyglobby's pattern semantics. */
export function matcher(patterns: string | readonly string[], ignore: readonly string[] = []) {
  const list = (typeof patterns === 'string' ? [patterns] : [...patterns]).map((p) => p.replace(/^\.\//, ''));
  if (list.length === 0) return () => false;
  return picomatch(list, { dot: true, ignore: ignore.length ? [...ignore] : undefined });
}

/**
 * Symlinked directories a pattern's static prefix goes through (`up/**` when `up` is a link): a walk
 * would have entered them, the index does not; callers report those that lead outside the workspace.
 */
export function symlinksOnPrefix(pattern: string, entries: readonly WorkspaceEntry[]): string[] {
  const base = picomatch.scan(pattern.replace(/^\.\//, '')).base;
  if (!base) return [];
  return entries
    .filter((e) => e.kind === 'symlink' && (base === e.path || base.startsWith(`${e.path}/`)))
    .map((e) => e.path);
}

/**
 * A bounded least-recently-used map of strings: memory per worker stays flat however many workspaces and
 * files it has seen.
 */
export class LruMap {
  private readonly items = new Map<string, string>();
  constructor(readonly capacity: number) {}
  get(key: string): string | undefined {
    const v = this.items.get(key);
    if (v === undefined) return undefined;
    this.items.delete(key);
    this.items.set(key, v);
    return v;
  }
  set(key: string, value: string): void {
    this.items.delete(key);
    this.items.set(key, value);
    while (this.items.size > this.capacity) {
      const oldest = this.items.keys().next().value;
      if (oldest === undefined) break;
      this.items.delete(oldest);
    }
  }
  get size(): number {
    return this.items.size;
  }
}

/** Files up to this size are read whole; larger ones are streamed. */
const WHOLE_READ_BYTES = 1024 * 1024;

/** sha256 and git blob id of a file in one read. */
export async function hashFile(file: string): Promise<{ sha256: string; blob: string; size: number }> {
  const { size } = await fs.stat(file);
  if (size <= WHOLE_READ_BYTES) {
    const content = await fs.readFile(file);
    return {
      sha256: createHash('sha256').update(content).digest('hex'),
      // A file that changed size since the stat has no consistent blob id: one that matches nothing.
      blob: content.length === size ? blobId(content) : '',
      size: content.length,
    };
  }
  const sha = createHash('sha256');
  const git = createHash('sha1').update(`blob ${size}\0`);
  let read = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    sha.update(chunk);
    git.update(chunk);
    read += chunk.length;
  }
  return { sha256: sha.digest('hex'), blob: read === size ? git.digest('hex') : '', size: read };
}

/** sha256 and size by git blob id: content-addressed, so valid for any workspace and any phase. */
const HASHES = new LruMap(200_000);

/** The sha256 and size of content git indexed as `blob`, when some earlier read has seen it. */
export function knownHash(blob: string): { sha256: string; size: number } | undefined {
  const v = HASHES.get(blob);
  if (v === undefined) return undefined;
  const [sha256, size] = v.split(':');
  return { sha256: sha256!, size: Number(size) };
}

/** Remembers what was read, if it is what git indexed (`actualBlob === blob`). */
export function rememberHash(blob: string, actualBlob: string, sha256: string, size: number): void {
  if (blob && actualBlob === blob) HASHES.set(blob, `${sha256}:${size}`);
}

/** Runs `fn` over `items` with at most `limit` at a time; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** Git blob id of a buffer (what `git hash-object` prints). */
export function blobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}
