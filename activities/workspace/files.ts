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
import path from 'node:path';
import picomatch from 'picomatch';
import { shadowGitDir } from './git';
import { withWorkspaceLock } from './lock';
import { ensureRepo, isInitialized } from './snapshot';
import {
  look,
  stageDirty,
  takeLook,
  walk,
  type Staging,
  type WorkspaceEntry,
  type WorkspaceListing,
} from './stage';
export { parseLsFiles, shareLook, type Staging, type WorkspaceEntry, type WorkspaceListing } from './stage';
export { blobId, hashFile, knownHash, LruMap, mapLimit, rememberHash } from './hashing';

/**
 * Lists the workspace. With a shadow repository (or `create`, which initialises one) the work tree is
 * staged into the shadow index and the index is listed; without one, the tree is walked.
 */
export async function listWorkspace(
  workspace: string,
  opts: { create?: boolean; onStaged?: (staged: Staging) => void } = {},
): Promise<WorkspaceListing> {
  const root = path.resolve(workspace);
  if (!opts.create && !(await isInitialized(shadowGitDir(root))))
    return { entries: await walk(root), indexed: false };
  return withWorkspaceLock(root, async () => {
    const { listing, staged } = await stageAndList(root);
    opts.onStaged?.(staged);
    return listing;
  });
}

/**
 * Looks at the work tree (initialising the repository) and lists what the index holds or will hold. The
 * caller holds the workspace lock; `staged` can be handed to `snapshotLocked` to commit exactly this.
 * With `stage: false` the paths changed since git last indexed them are left for that commit to stage
 * (one git process fewer), and their entries come without a blob. With `shared`, a look the gates just
 * offered (./stage `shareLook`) is taken instead of walking again.
 */
export async function stageAndList(
  root: string,
  opts: { stage?: boolean; shared?: boolean } = {},
): Promise<{ listing: WorkspaceListing; staged: Staging }> {
  const { gitDir } = await ensureRepo(root);
  const staged = (opts.shared ? await takeLook(gitDir, root) : undefined) ?? (await look(gitDir, root));
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
