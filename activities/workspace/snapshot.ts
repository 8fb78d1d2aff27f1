/**
 * Workspace snapshots: commit the whole work tree to the shadow repository, restore a commit exactly,
 * and materialize a commit into a fresh directory (fork).
 *
 * "Exactly" means: every file and symlink with its content and permission bits, empty directories (git
 * cannot store those, so they are listed in the commit message as `Empty-Dir:` trailers) and nested git
 * repositories with their files and their `.git` (see exact.ts for the bits a git tree cannot hold). The
 * workspace's `.gitignore` files are deliberately ignored (`add --force`): a rollback must also remove a
 * `dist/` or `.env` that an agent created after the checkpoint. Never included or touched: `.orchestrator/`
 * and `.git` at the workspace root (the user's own repository).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  applyModes,
  auxTreeEntries,
  exactTrailers,
  fixModes,
  isBigTree,
  parseExact,
  readModes,
  restoreNestedGits,
  scanTree,
  stageExact,
  unlockDirs,
  type ExactState,
  type WorkspaceScan,
} from './exact';
import { readHead, runGit, resolveCommit, shadowGitDir, STATE_DIR, WorkspaceError } from './git';
import { commitObject, readObject, treeObject, updateRef, writeObject } from './objects';
import { lendHelper, startHelper } from './blobs';
import { restoreChanged } from './restore';
import { forgetLook, indexTree, look, type Staging } from './stage';
import { ensureStateDir, readHold, writeHold } from './hold';
import { withWorkspaceLock } from './lock';

const EXCLUDE_FILE_CONTENT = `# Managed by orchestrator: never snapshot its own state or a git dir.\n/${STATE_DIR}/\n.git/\n`;
const REPO_CONFIG = `[core]
\tbare = false
\tautocrlf = false
\tfilemode = true
\tsymlinks = true
\tlogAllRefUpdates = always
[gc]
\t# Background gc could race a snapshot; the shadow repository stays small enough not to need it.
\tauto = 0
[user]
\tname = orchestrator
\temail = orchestrator@localhost
`;
/** The config `git init --bare` writes (REPO_CONFIG, appended after it, makes the repository ours). */
const INIT_CONFIG = `[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = true
`;
const EMPTY_DIR_TRAILER = 'Empty-Dir: ';
const MATERIALIZED_TRAILER = 'Materialized-From: ';

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

export async function isInitialized(gitDir: string): Promise<boolean> {
  try {
    return (await fs.readFile(path.join(gitDir, 'info', 'exclude'), 'utf8')) === EXCLUDE_FILE_CONTENT;
  } catch {
    return false;
  }
}

export async function ensureRepo(workspace: string): Promise<{ gitDir: string; created: boolean }> {
  const gitDir = shadowGitDir(workspace);
  if (await isInitialized(gitDir)) {
    // Workspaces initialised before the .gitignore existed get it now.
    await ensureStateDir(workspace);
    return { gitDir, created: false };
  }
  await fs.mkdir(workspace, { recursive: true });
  await ensureStateDir(workspace);
  // What `git init --bare` makes that git needs (HEAD, objects/, refs/, the format version), written here:
  // a git process less at every run's start (each a fork and exec, hundreds at once with a fleet of runs).
  // Bare keeps git from recording an absolute core.worktree: a forked workspace is renamed into place, and
  // the work tree is passed on every command anyway. HEAD is written last: a repository with a HEAD is
  // complete up to here (a crash before it is made again from the start).
  if (!(await exists(path.join(gitDir, 'HEAD')))) {
    for (const dir of ['objects/info', 'objects/pack', 'refs/heads', 'refs/tags'])
      await fs.mkdir(path.join(gitDir, dir), { recursive: true });
    await fs.writeFile(path.join(gitDir, 'config'), INIT_CONFIG);
    await fs.writeFile(path.join(gitDir, 'HEAD'), 'ref: refs/heads/master\n');
  }
  // Appended rather than set key by key: one file write instead of a git process per setting (a later
  // section overrides an earlier one in git config).
  await fs.appendFile(path.join(gitDir, 'config'), REPO_CONFIG);
  await fs.mkdir(path.join(gitDir, 'info'), { recursive: true });
  // Written last: its content marks a completely initialised repository.
  await fs.writeFile(path.join(gitDir, 'info', 'exclude'), EXCLUDE_FILE_CONTENT);
  return { gitDir, created: true };
}

/**
 * Creates the workspace folder (mkdir -p) and its shadow repository; safe to call repeatedly. With
 * `holder`, records that run as the one holding the workspace (see ./hold).
 */
export async function initWorkspace(args: {
  workspace: string;
  holder?: string;
}): Promise<{ gitDir: string; created: boolean }> {
  const workspace = path.resolve(args.workspace);
  return withWorkspaceLock(workspace, async () => {
    const repo = await ensureRepo(workspace);
    if (args.holder && (await readHold(workspace))?.runId !== args.holder) {
      await writeHold(workspace, { runId: args.holder, kind: 'run', since: new Date().toISOString() });
    }
    return repo;
  });
}

function withTrailers(message: string, emptyDirs: string[], extra: string[] = []): string {
  const trailers = [...extra, ...emptyDirs.map((d) => EMPTY_DIR_TRAILER + JSON.stringify(d))];
  return trailers.length ? `${message.trimEnd()}\n\n${trailers.join('\n')}\n` : `${message.trimEnd()}\n`;
}

async function commitMessage(gitDir: string, workspace: string, commit: string): Promise<string> {
  const { stdout } = await runGit(gitDir, workspace, ['cat-file', 'commit', commit]);
  return stdout.slice(stdout.indexOf('\n\n') + 2);
}

async function emptyDirsOf(gitDir: string, workspace: string, commit: string): Promise<string[]> {
  return emptyDirsIn(await commitMessage(gitDir, workspace, commit));
}

function emptyDirsIn(message: string): string[] {
  return message
    .split('\n')
    .filter((l) => l.startsWith(EMPTY_DIR_TRAILER))
    .map((l) => JSON.parse(l.slice(EMPTY_DIR_TRAILER.length)) as unknown)
    .filter((d): d is string => typeof d === 'string' && !d.startsWith('/') && !d.split('/').includes('..'));
}

/**
 * The full hash and the message of a snapshot commit, in one git call for a full hash (what runs pass);
 * WorkspaceError `UnknownCommit` when it is not a commit of this repository.
 */
async function readCommit(
  gitDir: string,
  workspace: string,
  commit: string,
): Promise<{ commit: string; message: string; tree: string }> {
  const full = /^[0-9a-f]{40}$/.test(commit) ? commit : await resolveCommit(gitDir, workspace, commit);
  // The loose object in-process (a commit a run passes is one of its snapshots); git for anything else.
  const loose = await readObject(gitDir, full);
  let text: string;
  if (loose?.type === 'commit') text = loose.content.toString('utf8');
  else {
    const r = await runGit(gitDir, workspace, ['cat-file', 'commit', full], { okCodes: [128] });
    if (r.exitCode !== 0) {
      throw new WorkspaceError(`commit ${commit} is not a snapshot of ${workspace}`, 'UnknownCommit');
    }
    text = r.stdout;
  }
  const tree = /^tree ([0-9a-f]{40})$/m.exec(text.slice(0, text.indexOf('\n\n')))?.[1];
  if (!tree) throw new WorkspaceError(`commit ${commit} has no tree`, 'GitFailed');
  return { commit: full, message: text.slice(text.indexOf('\n\n') + 2), tree };
}

async function createDirs(root: string, dirs: string[]): Promise<void> {
  for (const d of dirs) await fs.mkdir(path.join(root, d), { recursive: true });
}

/**
 * Commits the workspace; the caller holds the workspace lock. `staged` is what the caller's own
 * {@link look} returned just before, under the same lock (a checkpoint validates what it saw and commits
 * it without walking again). Git stages what changed and writes the tree (./stage); the commit, the
 * modes object, the tree keeping the extra objects reachable and the ref updates are written here
 * (./objects): plumbing rather than `git commit`, so an unchanged tree still gets its own commit (one per
 * checkpoint) and no hook or signing setting can interfere.
 */
export async function snapshotLocked(
  workspace: string,
  message: string,
  extraTrailers: string[] = [],
  staged?: Staging,
): Promise<{ commit: string; tree: string }> {
  const { gitDir } = await ensureRepo(workspace);
  const staging = staged ?? (await look(gitDir, workspace));
  const tree = await indexTree(staging);
  const { scan, exact } = staging;
  const body = withTrailers(message, scan.emptyDirs, [...extraTrailers, ...exactTrailers(exact)]);
  const parent = await readHead(gitDir);
  if (exact.modesJson !== undefined) await writeObject(gitDir, 'blob', Buffer.from(exact.modesJson, 'utf8'));
  const commit = await writeObject(
    gitDir,
    'commit',
    commitObject({ tree, parent, message: body, seconds: Math.floor(Date.now() / 1000) }),
  );
  const aux = auxTreeEntries(exact);
  if (aux.length > 0) {
    const auxTree = await writeObject(gitDir, 'tree', treeObject(aux));
    await updateRef(gitDir, `refs/orchestrator/aux/${commit}`, auxTree, 'snapshot: extra objects');
  }
  // HEAD only ever moves forward, so every snapshot stays reachable even after a rollback.
  await updateRef(gitDir, 'HEAD', commit, message.split('\n')[0] || 'snapshot', parent);
  // A large workspace with checkpoints may be restored: the thread that helps is booted now (./blobs).
  if (isBigTree(workspace)) startHelper();
  return { commit, tree };
}

/**
 * Commits the current state of the workspace to its shadow repository (initialising it if needed).
 * Always creates a new commit, even when nothing changed since the previous snapshot.
 */
export async function snapshotWorkspace(args: {
  workspace: string;
  message: string;
}): Promise<{ commit: string; tree: string }> {
  const workspace = path.resolve(args.workspace);
  return withWorkspaceLock(workspace, () => snapshotLocked(workspace, args.message));
}

/**
 * Makes the workspace exactly the tree of `commit`: files created since are deleted (ignored ones too),
 * changed or deleted files come back byte for byte with their permission bits, empty directories are
 * recreated, nested repositories get back their files and their `.git`. `.orchestrator/` and the root
 * `.git` are left alone.
 */
export async function restoreWorkspace(args: {
  workspace: string;
  commit: string;
}): Promise<{ commit: string }> {
  const workspace = path.resolve(args.workspace);
  return withWorkspaceLock(workspace, async () => {
    // The tree changes: a look the gates offered no longer describes it.
    forgetLook(workspace);
    const gitDir = shadowGitDir(workspace);
    if (!(await isInitialized(gitDir))) {
      throw new WorkspaceError(
        `${workspace} has no snapshots (no shadow repository)`,
        'WorkspaceNotInitialized',
      );
    }
    const { commit, message, tree } = await readCommit(gitDir, workspace, args.commit);
    const target = parseExact(message);
    // On a large tree a second thread reads blobs beside this one (./blobs): booted by its checkpoints,
    // or now, so that its boot overlaps the walk.
    const helper = isBigTree(workspace) ? lendHelper() : undefined;
    try {
      const walked = await scanTree(workspace);
      const { scan } = walked;
      if (target.nested.length > 0 || scan.nestedRepos.length > 0) {
        await restoreWithNested(gitDir, workspace, commit, target);
      } else {
        await unlockDirs(workspace, scan);
        // Only what differs from the target is written when the stat cache allows it (./restore); a
        // failure half-way leaves it to git's full restore below, which is exact whatever was written or
        // removed.
        const done = await restoreChanged({
          gitDir,
          root: workspace,
          tree,
          walked,
          emptyDirs: emptyDirsIn(message),
          helper,
        }).catch(() => false);
        // Without nested repositories the index need not be brought up to date first (a `git add` of the
        // whole tree, the largest part of a restore): whatever is not in it goes, and `read-tree --reset
        // -u` checks every path it keeps against the disk (lstat), rewriting what changed since it was
        // staged. -x: .gitignore'd files go too.
        if (!done) await runGit(gitDir, workspace, ['clean', '-ffdxq', '-e', `/${STATE_DIR}/`]);
        if (!done) await runGit(gitDir, workspace, ['read-tree', '--reset', '-u', commit]);
      }
      await finishRestore(workspace, gitDir, message, target, scan);
    } finally {
      helper?.giveBack();
    }
    return { commit };
  });
}

/** The restore's last steps: empty folders, then permission bits. */
async function finishRestore(
  workspace: string,
  gitDir: string,
  message: string,
  target: ExactState,
  scan: WorkspaceScan,
): Promise<void> {
  await createDirs(workspace, emptyDirsIn(message));
  const modes = await readModes(gitDir, workspace, target.modes);
  // Git writes files and directories with the canonical bits when the umask is 022: then only paths
  // whose bits were not canonical before, or are recorded, can be wrong, and no second scan is needed.
  if (process.umask() === 0o022) await fixModes(workspace, [...Object.keys(scan.modes)], modes);
  else await applyModes(workspace, modes);
}

/** The restore when nested repositories are involved: their `.git` is compared with the target's. */
async function restoreWithNested(
  gitDir: string,
  workspace: string,
  commit: string,
  target: ExactState,
): Promise<void> {
  // Staging first makes the index describe the work tree exactly (nested repositories' files included),
  // and tells which nested `.git` differs from the target's.
  const { scan, exact: current } = await stageExact(gitDir, workspace);
  await unlockDirs(workspace, scan);
  await runGit(gitDir, workspace, ['read-tree', '--reset', '-u', commit]);
  // -x: .gitignore'd files are removed too; -ff: also nested repositories created since the snapshot.
  await runGit(gitDir, workspace, ['clean', '-ffdxq', '-e', `/${STATE_DIR}/`]);
  await restoreNestedGits({
    gitDir,
    workspace,
    target: target.nested,
    current: current.nested,
    present: scan.nestedRepos,
  });
}

/** Lists the entries of `dir`, or undefined when it does not exist. */
async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The source commit a workspace was materialized from, read from its first snapshot. */
async function materializedFrom(workspace: string): Promise<{ source: string; commit: string } | undefined> {
  const gitDir = shadowGitDir(workspace);
  if (!(await isInitialized(gitDir))) return undefined;
  const roots = await runGit(gitDir, workspace, ['rev-list', '--max-parents=0', 'HEAD'], { okCodes: [128] });
  const root = roots.exitCode === 0 ? roots.stdout.split('\n')[0]?.trim() : undefined;
  if (!root) return undefined;
  const line = (await commitMessage(gitDir, workspace, root))
    .split('\n')
    .find((l) => l.startsWith(MATERIALIZED_TRAILER));
  return line ? { source: line.slice(MATERIALIZED_TRAILER.length).trim(), commit: root } : undefined;
}

/**
 * Fork support: fills `targetWorkspace` with exactly the tree of `commit` from `sourceWorkspace`'s
 * shadow repository, gives it its own shadow repository and takes a first snapshot there (returned as
 * `commit`; its tree equals the source commit's tree).
 *
 * The target must be empty or not exist. The tree is built in a sibling temp folder and renamed into
 * place, so a crash never leaves a half-copied target; a retry after success returns the same result.
 */
export async function materializeCheckpoint(args: {
  sourceWorkspace: string;
  commit: string;
  targetWorkspace: string;
}): Promise<{ commit: string; sourceCommit: string; tree: string }> {
  const source = path.resolve(args.sourceWorkspace);
  const target = path.resolve(args.targetWorkspace);
  if (target === source || target.startsWith(source + path.sep) || source.startsWith(target + path.sep)) {
    throw new WorkspaceError(
      `target ${target} must not overlap the source workspace ${source}`,
      'InvalidPath',
    );
  }
  const srcGitDir = shadowGitDir(source);
  if (!(await isInitialized(srcGitDir))) {
    throw new WorkspaceError(`${source} has no snapshots (no shadow repository)`, 'WorkspaceNotInitialized');
  }
  const sourceCommit = await resolveCommit(srcGitDir, source, args.commit);

  const entries = await listDir(target);
  if (entries && entries.length > 0) {
    const done = await materializedFrom(target);
    if (done?.source === sourceCommit) {
      const tree = (
        await runGit(shadowGitDir(target), target, ['rev-parse', `${done.commit}^{tree}`])
      ).stdout.trim();
      return { commit: done.commit, sourceCommit, tree };
    }
    const sample = entries.slice(0, 3).join(', ');
    throw new WorkspaceError(
      `target workspace ${target} is not empty (${entries.length} entries: ${sample}); fork into a new or empty directory`,
      'TargetNotEmpty',
    );
  }

  const parent = path.dirname(target);
  await fs.mkdir(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(target)}.materialize-${randomUUID().slice(0, 8)}`);
  try {
    await fs.mkdir(path.join(tmp, STATE_DIR), { recursive: true });
    // A private index file: the source repository's own index must not change.
    const env = { GIT_INDEX_FILE: path.join(tmp, STATE_DIR, 'materialize.index') };
    await runGit(srcGitDir, tmp, ['read-tree', sourceCommit], { env });
    await runGit(srcGitDir, tmp, ['checkout-index', '--all', '--force'], { env });
    await fs.rm(env.GIT_INDEX_FILE, { force: true });
    const exact = parseExact(await commitMessage(srcGitDir, source, sourceCommit));
    await restoreNestedGits({ gitDir: srcGitDir, workspace: tmp, target: exact.nested });
    await createDirs(tmp, await emptyDirsOf(srcGitDir, source, sourceCommit));
    await applyModes(tmp, await readModes(srcGitDir, source, exact.modes));
    const snap = await withWorkspaceLock(tmp, () =>
      snapshotLocked(tmp, `Materialized from ${sourceCommit}`, [MATERIALIZED_TRAILER + sourceCommit]),
    );
    // rename(2) replaces an empty directory, and fails (leaving ours in tmp) if one appeared meanwhile.
    await fs.rename(tmp, target);
    return { commit: snap.commit, sourceCommit, tree: snap.tree };
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
