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
import { shadowGitDir } from './git';
import { withWorkspaceLock } from './lock';
import { ensureRepo, isInitialized } from './snapshot';
import { look, stageDirty, walk, type Staging, type WorkspaceEntry, type WorkspaceListing } from './stage';
export { parseLsFiles, type WorkspaceEntry, type WorkspaceListing } from './stage';

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
 * Looks at the work tree (initialising the repository) and lists what the index holds or will hold. The
 * caller holds the workspace lock; `staged` can be handed to `snapshotLocked` to commit exactly this.
 * With `stage: false` the paths changed since git last indexed them are left for that commit to stage
 * (one git process fewer), and their entries come without a blob.
 */
export async function stageAndList(
  root: string,
  opts: { stage?: boolean } = {},
): Promise<{ listing: WorkspaceListing; staged: Staging }> {
  const { gitDir } = await ensureRepo(root);
  const staged = await look(gitDir, root);
  if (opts.stage !== false) await stageDirty(staged);
  return { listing: staged.listing, staged };
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
