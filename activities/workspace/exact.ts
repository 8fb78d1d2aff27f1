/**
 * What a git tree cannot hold, made exact: nested git repositories and full permission bits.
 *
 * - A nested repository (`vendor/lib/.git`) would be staged by `git add` as a gitlink, which records a
 *   commit id but none of the files (a rollback left their later content, a fork got an empty folder), and
 *   a nested repository without a commit made staging fail outright. Here its files are staged like any
 *   other files (from its own index file, so git never sees the gitlink), and its `.git` (a directory, a
 *   `gitdir:` file or a symlink) is stored as a separate object named in the commit message.
 * - Git keeps only the executable bit. Every file or directory whose permission bits differ from the
 *   canonical ones (0644, 0755 for executables and directories) is listed in a JSON blob named in the
 *   commit message, and set back after a restore.
 *
 * Those objects are kept reachable by `refs/orchestrator/aux/<commit>`. The workspace's own root `.git`
 * is never read or written (it is the user's repository).
 */
import { createHash, randomUUID } from 'node:crypto';
import fsSync, { type BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { startProgram } from '../spawner';
import { runGit, STATE_DIR, WorkspaceError } from './git';

export const NESTED_GIT_TRAILER = 'Nested-Git: ';
export const MODES_TRAILER = 'Modes: ';

/** What a scan of the work tree found (paths relative, with `/`, sorted). */
export interface WorkspaceScan {
  /** Directories with no entries at all (inside nested `.git` dirs too). */
  emptyDirs: string[];
  /** Directories (not the root) that hold a `.git` entry. */
  nestedRepos: { path: string; git: 'dir' | 'file' | 'symlink' }[];
  /** Permission bits (octal string) of every file or directory whose bits are not canonical. */
  modes: Record<string, string>;
}

/** The permission bits git's checkout is made to produce: 0755 for directories and executables. */
export function canonicalMode(isDir: boolean, mode: number): number {
  return isDir || (mode & 0o100) !== 0 ? 0o755 : 0o644;
}

/**
 * Walks the workspace without following symlinks; skips the root state dir and the root `.git`, and
 * descends into nested repositories and their `.git` directories. One GNU `find` does it where there is
 * one: a walk in Node costs a promise and a libuv round trip per file, which on a loaded machine made a
 * 10,000-file tree take 2–4 s against 0.3–0.6 s for `find` (the scan runs at every gate evaluation,
 * checkpoint and restore). Elsewhere, or when `find` fails (a directory it cannot read, a file that
 * vanished mid-walk), the Node walk decides.
 */
export async function scanWorkspace(root: string): Promise<WorkspaceScan> {
  return (await scanTree(root)).scan;
}

/** A regular file or symbolic link as `find` saw it. */
export interface FoundFile {
  path: string;
  kind: 'file' | 'symlink';
  /** Type, inode, size, mtime and ctime (ns): differs whenever the content may have changed. */
  key: string;
  /** The later of mtime and ctime, ms: how recently it changed (see ./tracked, racy entries). */
  changedMs: number;
}

/**
 * The scan, and with GNU `find` every file and symlink with its stat key, from the same walk; `startedMs`
 * is when the walk began (anything changed after it shows a ctime at or after it).
 */
export async function scanTree(root: string): Promise<TreeScan> {
  const startedMs = Date.now();
  // A small tree is read here, in find's own format, without starting a program: a process start (the
  // starter's fork, exec, find's own start) costs more than a few hundred lstat calls.
  const small = bigTrees.has(root) ? undefined : printSmallTree(root);
  if (small !== undefined) return { ...parseFind(small), startedMs };
  if (findWorks !== false) {
    const found = await scanWithFind(root);
    if (found) return { ...found, startedMs };
  }
  return { scan: await scanWithNode(root), startedMs };
}

/**
 * Trees read in-process at most this many entries. Beyond it `find` is the faster walk (a promise or a
 * blocking call per entry against one process); below it the process start is most of the cost.
 */
export const SMALL_TREE_ENTRIES = 256;
/** Workspaces last seen with more than {@link SMALL_TREE_ENTRIES} entries: they go to `find` at once. */
const bigTrees = new Set<string>();
const BIG_TREES_KEPT = 64;

/** Whether `root` was last seen with more than {@link SMALL_TREE_ENTRIES} entries. */
export function isBigTree(root: string): boolean {
  return bigTrees.has(root);
}

/** `find -printf`'s `%T@`: seconds, a point and ten digits (nanoseconds and a zero). */
function findTime(ns: bigint): string | undefined {
  if (ns < 0n) return undefined;
  return `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}0`;
}

function typeLetter(st: BigIntStats): string {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isFIFO()) return 'p';
  if (st.isSocket()) return 's';
  if (st.isBlockDevice()) return 'b';
  return st.isCharacterDevice() ? 'c' : 'U';
}

/**
 * The tree as {@link scanWithFind}'s `find` prints it ({@link FIND_FORMAT}: same records, same pruning of
 * the root's state dir and `.git`), read with lstat; undefined when the tree has more than
 * {@link SMALL_TREE_ENTRIES} entries (remembered, so that the next scan of it goes to `find` at once) or
 * anything could not be read (a vanished file, an unreadable folder, a name that is not UTF-8, a time
 * before 1970): `find` then decides as before. The records are byte for byte what `find` prints, so the
 * stat keys of ./stage's cache are the same whichever of the two walked.
 */
export function printSmallTree(root: string): string | undefined {
  const out: string[] = [];
  const dirs = [''];
  try {
    for (let rel = dirs.pop(); rel !== undefined; rel = dirs.pop()) {
      const names = fsSync.readdirSync(rel ? path.join(root, rel) : root);
      for (const name of names) {
        if (!rel && (name === STATE_DIR || name === '.git')) continue;
        if (out.length >= SMALL_TREE_ENTRIES) {
          if (bigTrees.size >= BIG_TREES_KEPT) bigTrees.clear();
          bigTrees.add(root);
          return undefined;
        }
        const child = rel ? `${rel}/${name}` : name;
        const st = fsSync.lstatSync(path.join(root, child), { bigint: true });
        const mtime = findTime(st.mtimeNs);
        const ctime = findTime(st.ctimeNs);
        if (mtime === undefined || ctime === undefined || name.includes('\uFFFD')) return undefined;
        const type = typeLetter(st);
        out.push(
          `${type} ${(st.mode & 0o7777n).toString(8)} ${st.ino} ${st.size} ${mtime} ${ctime} ${child}\0`,
        );
        if (type === 'd') dirs.push(child);
      }
    }
  } catch {
    return undefined;
  }
  return out.join('');
}

/** What one walk saw: the scan, and with GNU `find` every entry (see {@link parseFind}). */
export interface TreeScan {
  scan: WorkspaceScan;
  files?: FoundFile[];
  /** Every directory (relative, not the root), with `find`. */
  dirs?: string[];
  /** Entries that are neither files, symlinks nor directories (fifos, sockets, devices), with `find`. */
  others?: string[];
  startedMs: number;
}

/** Whether GNU `find` (with `-printf`) ran here before; false after it could not run at all. */
let findWorks: boolean | undefined;

/** The `-printf` format: type letter, permission bits, inode, size, mtime, ctime, relative path. */
const FIND_FORMAT = '%y %m %i %s %T@ %C@ %P\\0';

/** Parses `find -printf` output in {@link FIND_FORMAT}. */
export function parseFind(out: string): {
  scan: WorkspaceScan;
  files: FoundFile[];
  dirs: string[];
  others: string[];
} {
  const scan: WorkspaceScan = { emptyDirs: [], nestedRepos: [], modes: {} };
  const files: FoundFile[] = [];
  const dirs: string[] = [];
  const others: string[] = [];
  const parents = new Set<string>();
  for (const rec of out.split('\0')) {
    // Six space-separated fields, then the path (which may hold spaces).
    const cuts: number[] = [];
    for (let i = 0, at = -1; i < 6; i++) {
      at = rec.indexOf(' ', at + 1);
      if (at < 0) break;
      cuts.push(at);
    }
    if (cuts.length < 6) continue;
    const rel = rec.slice(cuts[5]! + 1);
    if (rel === '') continue;
    const type = rec.slice(0, cuts[0]);
    const slash = rel.lastIndexOf('/');
    parents.add(slash < 0 ? '' : rel.slice(0, slash));
    const name = rel.slice(slash + 1);
    if (name === '.git' && slash >= 0) {
      scan.nestedRepos.push({
        path: rel.slice(0, slash),
        git: type === 'd' ? 'dir' : type === 'l' ? 'symlink' : 'file',
      });
    }
    if (type === 'f' || type === 'l') {
      const mtime = rec.slice(cuts[3]! + 1, cuts[4]);
      const ctime = rec.slice(cuts[4]! + 1, cuts[5]);
      files.push({
        path: rel,
        kind: type === 'f' ? 'file' : 'symlink',
        // The bits are in it too: a chmod changes ctime anyway, but an exact key costs nothing.
        key: `${type}${rec.slice(cuts[0]! + 1, cuts[1])}:${rec.slice(cuts[1]! + 1, cuts[3])}:${mtime}:${ctime}`,
        changedMs: Math.max(Number(mtime), Number(ctime)) * 1000,
      });
    }
    if (type !== 'd' && type !== 'f') {
      if (type !== 'l') others.push(rel);
      continue;
    }
    const bits = parseInt(rec.slice(cuts[0]! + 1, cuts[1]), 8);
    if (bits !== canonicalMode(type === 'd', bits)) scan.modes[rel] = bits.toString(8);
    if (type === 'd') dirs.push(rel);
  }
  scan.emptyDirs = dirs.filter((d) => !parents.has(d));
  return { scan: sortScan(scan), files, dirs, others };
}

async function scanWithFind(root: string): Promise<ReturnType<typeof parseFind> | undefined> {
  const r = await runFind(root, [
    '.',
    '-mindepth',
    '1',
    '(',
    '-path',
    `./${STATE_DIR}`,
    '-o',
    '-path',
    './.git',
    ')',
    '-prune',
    '-o',
    '-printf',
    FIND_FORMAT,
  ]);
  if (r.exitCode !== 0) {
    // Not there at all, or no -printf (BSD, busybox): never again. Any other failure: this scan only.
    if (r.exitCode === undefined || /printf|unknown|invalid/i.test(r.stderr)) findWorks = false;
    return undefined;
  }
  findWorks = true;
  return parseFind(r.stdout);
}

/**
 * Runs `find` and decodes its output once at the end: execa decoded the output chunk by chunk, which on
 * a 10,000-file tree cost as much as the walk itself. `exitCode` is undefined when it could not start.
 * Started by the worker's process starter (../spawner): forking the worker itself blocks it for tens of
 * ms, at every gate evaluation, checkpoint and restore.
 */
function runFind(
  cwd: string,
  args: string[],
): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const program = startProgram('find', args, {
    cwd,
    env: { ...process.env, LC_ALL: 'C' },
    onStdout: (b) => out.push(b),
    onStderr: (b) => err.push(b),
  });
  return program.ended.then(
    (end) =>
      end.spawnError !== undefined
        ? { stdout: '', stderr: end.spawnError }
        : {
            exitCode: end.exitCode ?? 1,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          },
    // The starter died under it: this scan only falls back to the walk in Node.
    (e: unknown) => ({ exitCode: 1, stdout: '', stderr: String(e) }),
  );
}

async function scanWithNode(root: string): Promise<WorkspaceScan> {
  const scan: WorkspaceScan = { emptyDirs: [], nestedRepos: [], modes: {} };
  async function walk(rel: string): Promise<void> {
    const entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
    if (rel && entries.length === 0) scan.emptyDirs.push(rel);
    await Promise.all(
      entries.map(async (e) => {
        if (!rel && (e.name === STATE_DIR || e.name === '.git')) return;
        const child = rel ? `${rel}/${e.name}` : e.name;
        if (e.name === '.git' && rel) {
          scan.nestedRepos.push({
            path: rel,
            git: e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'symlink' : 'file',
          });
        }
        if (e.isSymbolicLink()) return;
        if (!e.isDirectory() && !e.isFile()) return;
        const st = await fs.lstat(path.join(root, child));
        const bits = st.mode & 0o7777;
        if (bits !== canonicalMode(e.isDirectory(), bits)) scan.modes[child] = bits.toString(8);
        if (e.isDirectory()) await walk(child);
      }),
    );
  }
  await walk('');
  return sortScan(scan);
}

function sortScan(scan: WorkspaceScan): WorkspaceScan {
  scan.emptyDirs.sort();
  scan.modes = Object.fromEntries(Object.entries(scan.modes).sort(([a], [b]) => (a < b ? -1 : 1)));
  scan.nestedRepos.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return scan;
}

/** The Node walk alone (tests compare it with the `find` scan). */
export const scanWorkspaceWithNode = scanWithNode;

/** A nested repository's `.git` as stored: a tree (directory), a `gitdir:` file's text, or a link target. */
export const NestedGitSchema = z.object({
  path: z.string(),
  type: z.enum(['tree', 'file', 'symlink']),
  /** The tree's object id; the `gitdir:` file's content; the link target. */
  id: z.string(),
});
export type NestedGit = z.infer<typeof NestedGitSchema>;

/** Extra state of a snapshot that the tree itself cannot hold. */
export interface ExactState {
  nested: NestedGit[];
  /** Blob id of the modes JSON, when any mode is not canonical. */
  modes?: string;
  /** The modes JSON itself, when the object is still to be written (by the snapshot's commit). */
  modesJson?: string;
}

function indexFile(gitDir: string, kind: string, rel: string): string {
  const id = createHash('sha1').update(rel).digest('hex').slice(0, 16);
  return path.join(gitDir, 'orchestrator', `${kind}-${id}.index`);
}

/** `:(exclude,literal)` pathspecs for the nested repositories strictly inside `under` (relative to it). */
function excludesUnder(nested: readonly { path: string }[], under: string): string[] {
  const prefix = under ? `${under}/` : '';
  return nested
    .filter((n) => n.path !== under && n.path.startsWith(prefix))
    .map((n) => `:(exclude,literal)${n.path.slice(prefix.length)}`);
}

/** Stages `dir` (relative to the workspace) into its own index file and returns the tree id. */
async function treeOf(
  gitDir: string,
  workspace: string,
  dir: string,
  index: string,
  excludes: string[],
): Promise<string> {
  await fs.mkdir(path.dirname(index), { recursive: true });
  const env = { GIT_INDEX_FILE: index };
  const workTree = path.join(workspace, dir);
  await runGit(gitDir, workTree, ['add', '--all', '--force', '--', '.', ...excludes], { env });
  return (await runGit(gitDir, workTree, ['write-tree'], { env })).stdout.trim();
}

/**
 * Stages the whole work tree into the shadow repository's index: every file (.gitignore'd ones too, the
 * state dir excluded), nested repositories' files included as plain files. Returns what the tree cannot
 * hold, already written as objects.
 */
export async function stageExact(
  gitDir: string,
  workspace: string,
  /** The caller's own scan of the tree, taken just before (default: scan now). */
  scanned?: WorkspaceScan,
): Promise<{ scan: WorkspaceScan; exact: ExactState }> {
  const scan = scanned ?? (await scanWorkspace(workspace));
  await runGit(gitDir, workspace, [
    'add',
    '--all',
    '--force',
    '--',
    '.',
    `:(exclude)${STATE_DIR}`,
    ...excludesUnder(scan.nestedRepos, ''),
  ]);
  const nested: NestedGit[] = [];
  // Parents before children (sorted): `rm --cached -r` of a parent must not drop a child's entries.
  for (const repo of scan.nestedRepos) {
    const tree = await treeOf(
      gitDir,
      workspace,
      repo.path,
      indexFile(gitDir, 'nested', repo.path),
      excludesUnder(scan.nestedRepos, repo.path),
    );
    await runGit(gitDir, workspace, [
      'rm',
      '-r',
      '--cached',
      '--force',
      '--quiet',
      '--ignore-unmatch',
      '--',
      repo.path,
    ]);
    await runGit(gitDir, workspace, ['read-tree', `--prefix=${repo.path}/`, tree]);
    const dotGit = `${repo.path}/.git`;
    if (repo.git === 'dir') {
      const id = await treeOf(gitDir, workspace, dotGit, indexFile(gitDir, 'gitdir', repo.path), []);
      nested.push({ path: repo.path, type: 'tree', id });
    } else if (repo.git === 'file') {
      // A `gitdir: <path>` pointer (submodule, worktree): a line of text, kept in the message itself.
      nested.push({
        path: repo.path,
        type: 'file',
        id: await fs.readFile(path.join(workspace, dotGit), 'utf8'),
      });
    } else {
      nested.push({ path: repo.path, type: 'symlink', id: await fs.readlink(path.join(workspace, dotGit)) });
    }
  }
  return { scan, exact: { nested, ...modesObject(scan) } };
}

/**
 * The modes JSON of a scan and its blob id, computed here: the commit that names it writes the object
 * (./commit), so recording modes costs no git process of its own.
 */
export function modesObject(scan: WorkspaceScan): { modes?: string; modesJson?: string } {
  if (Object.keys(scan.modes).length === 0) return {};
  const modesJson = JSON.stringify({ version: 1, modes: scan.modes });
  const content = Buffer.from(modesJson, 'utf8');
  const modes = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
  return { modes, modesJson };
}

/** Commit-message trailers naming the extra state. */
export function exactTrailers(exact: ExactState): string[] {
  return [
    ...exact.nested.map((n) => NESTED_GIT_TRAILER + JSON.stringify(n)),
    ...(exact.modes ? [MODES_TRAILER + exact.modes] : []),
  ];
}

/**
 * The entries of a tree naming the extra objects of a snapshot, which the snapshot keeps reachable under
 * `refs/orchestrator/aux/<commit>` (./snapshot); empty when there are none.
 */
export function auxTreeEntries(exact: ExactState): { name: string; type: 'blob' | 'tree'; id: string }[] {
  const entries: { name: string; type: 'blob' | 'tree'; id: string }[] = exact.nested
    .filter((n) => n.type === 'tree')
    .map((n, i) => ({ name: `nested-${i}`, type: 'tree', id: n.id }));
  if (exact.modes) entries.push({ name: 'modes', type: 'blob', id: exact.modes });
  return entries;
}

const safeRel = (p: string) => p !== '' && !p.startsWith('/') && !p.split('/').includes('..');

/** The extra state recorded in a commit message (entries that are not safe relative paths are dropped). */
export function parseExact(message: string): ExactState {
  const nested: NestedGit[] = [];
  let modes: string | undefined;
  for (const line of message.split('\n')) {
    if (line.startsWith(NESTED_GIT_TRAILER)) {
      const parsed = NestedGitSchema.safeParse(JSON.parse(line.slice(NESTED_GIT_TRAILER.length)));
      if (parsed.success && safeRel(parsed.data.path)) nested.push(parsed.data);
    } else if (line.startsWith(MODES_TRAILER)) {
      modes = line.slice(MODES_TRAILER.length).trim();
    }
  }
  return { nested, modes };
}

/** Checks out a tree of `gitDir` into `dir` (which must be empty or missing) with a private index. */
async function checkoutTree(gitDir: string, dir: string, tree: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  // In the shadow repository, never in the workspace: a crash must not leave it where a snapshot sees it.
  const index = path.join(gitDir, 'orchestrator', `checkout-${randomUUID().slice(0, 8)}.index`);
  await fs.mkdir(path.dirname(index), { recursive: true });
  const env = { GIT_INDEX_FILE: index };
  try {
    await runGit(gitDir, dir, ['read-tree', tree], { env });
    await runGit(gitDir, dir, ['checkout-index', '--all', '--force'], { env });
  } finally {
    await fs.rm(index, { force: true });
  }
}

/**
 * Makes every nested repository's `.git` in `workspace` what `target` records: replaced when it differs
 * from `current` (what the workspace holds now, from {@link stageExact}; omit to always write), removed
 * where the target has no repository.
 */
export async function restoreNestedGits(args: {
  gitDir: string;
  workspace: string;
  target: readonly NestedGit[];
  current?: readonly NestedGit[];
  /** Nested repositories present now (from a scan), so that ones absent in the target are removed. */
  present?: readonly { path: string }[];
}): Promise<void> {
  const wanted = new Set(args.target.map((n) => n.path));
  for (const p of args.present ?? []) {
    if (!wanted.has(p.path))
      await fs.rm(path.join(args.workspace, p.path, '.git'), { recursive: true, force: true });
  }
  for (const n of args.target) {
    const same = args.current?.find((c) => c.path === n.path && c.type === n.type && c.id === n.id);
    if (same) continue;
    const dotGit = path.join(args.workspace, n.path, '.git');
    await fs.rm(dotGit, { recursive: true, force: true });
    await fs.mkdir(path.dirname(dotGit), { recursive: true });
    if (n.type === 'tree') await checkoutTree(args.gitDir, dotGit, n.id);
    else if (n.type === 'symlink') await fs.symlink(n.id, dotGit);
    else await fs.writeFile(dotGit, n.id);
  }
}

const ModesSchema = z.object({ version: z.literal(1), modes: z.record(z.string(), z.string()) });

/** The recorded modes of a snapshot (empty when every mode was canonical). */
export async function readModes(
  gitDir: string,
  workspace: string,
  blob: string | undefined,
): Promise<Record<string, string>> {
  if (!blob) return {};
  const { stdout } = await runGit(gitDir, workspace, ['cat-file', 'blob', blob]);
  const parsed = ModesSchema.safeParse(JSON.parse(stdout));
  if (!parsed.success) throw new WorkspaceError(`modes object ${blob} is malformed`, 'GitFailed');
  return Object.fromEntries(Object.entries(parsed.data.modes).filter(([p]) => safeRel(p)));
}

/**
 * Sets every file's and directory's permission bits to the recorded ones, or to the canonical ones when
 * none is recorded. Only paths whose bits differ are touched.
 */
export async function applyModes(
  workspace: string,
  recorded: Readonly<Record<string, string>>,
): Promise<void> {
  const now = await scanWorkspace(workspace);
  await fixModes(workspace, Object.keys(now.modes), recorded);
}

/**
 * Sets the recorded bits, and the canonical ones on `candidates` (paths that may hold other bits) that
 * have none recorded. Only paths whose bits differ are touched.
 */
export async function fixModes(
  workspace: string,
  candidates: readonly string[],
  recorded: Readonly<Record<string, string>>,
): Promise<void> {
  const paths = new Set([...Object.keys(recorded), ...candidates]);
  // Deepest first: a directory made read-only must not block fixing what is inside it.
  for (const rel of [...paths].sort((a, b) => b.split('/').length - a.split('/').length)) {
    const full = path.join(workspace, rel);
    const st = await fs.lstat(full).catch(() => undefined);
    if (!st || st.isSymbolicLink()) continue;
    const want =
      recorded[rel] !== undefined ? parseInt(recorded[rel], 8) : canonicalMode(st.isDirectory(), st.mode);
    if ((st.mode & 0o7777) !== want) await fs.chmod(full, want);
  }
}

/**
 * Makes every directory of the scan writable and searchable by us before git writes into it (a
 * checkpoint may hold a 0555 directory); {@link applyModes} sets the recorded bits back afterwards.
 */
export async function unlockDirs(workspace: string, scan: WorkspaceScan): Promise<void> {
  for (const [rel, bits] of Object.entries(scan.modes)) {
    const full = path.join(workspace, rel);
    const mode = parseInt(bits, 8);
    if ((mode & 0o700) === 0o700) continue;
    const st = await fs.lstat(full).catch(() => undefined);
    if (st?.isDirectory()) await fs.chmod(full, mode | 0o700);
  }
}
