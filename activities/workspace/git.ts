/**
 * The shadow git repository behind workspace snapshots. It lives at `<workspace>/.orchestrator/shadow.git`
 * with the workspace as its work tree, so a workspace that is itself a git repository keeps its own
 * `.git` (history, index, config) untouched: every command here names the shadow git dir explicitly.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { runProgram } from '../spawner';

/** Folder in the workspace that snapshots never include and restores never touch. */
export const STATE_DIR = '.orchestrator';

export function shadowGitDir(workspace: string): string {
  return path.join(workspace, STATE_DIR, 'shadow.git');
}

export type WorkspaceErrorType =
  | 'WorkspaceNotInitialized'
  | 'UnknownCommit'
  | 'TargetNotEmpty'
  | 'InvalidPath'
  | 'GitMissing'
  | 'GitLocked'
  | 'GitFailed';

/** A workspace operation failure; `type` becomes the ApplicationFailure type in activities. */
export class WorkspaceError extends Error {
  override readonly name = 'WorkspaceError';
  constructor(
    message: string,
    readonly type: WorkspaceErrorType,
    /** Whether trying again may succeed (a lock held by another process, an I/O hiccup). */
    readonly retryable = false,
  ) {
    super(message);
  }
}

const IDENTITY = { name: 'orchestrator', email: 'orchestrator@localhost' };

/**
 * The environment git runs with: no user or system config (a global `core.excludesFile`, hooks path or
 * `commit.gpgSign` must not change what a snapshot contains or whether it works), and none of the
 * caller's GIT_* variables (a GIT_INDEX_FILE inherited from a hook would point at the user's index).
 */
function gitEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('GIT_')) env[k] = v;
  }
  return {
    ...env,
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: IDENTITY.name,
    GIT_AUTHOR_EMAIL: IDENTITY.email,
    GIT_COMMITTER_NAME: IDENTITY.name,
    GIT_COMMITTER_EMAIL: IDENTITY.email,
    // Lock-contention detection below matches git's English message.
    LC_ALL: 'C',
    ...extra,
  };
}

/** Options applied to every command, whatever the repository's own config says. */
const FORCED_CONFIG = [
  'core.autocrlf=false',
  'core.safecrlf=false',
  'core.quotePath=false',
  'safe.directory=*',
];

export interface GitOptions {
  input?: string;
  env?: Record<string, string>;
  /** Exit codes that are answers rather than failures (e.g. 1 from `rev-parse --verify --quiet`). */
  okCodes?: number[];
}

export interface GitResult {
  stdout: string;
  exitCode: number;
}

/** A lock file older than this was left by a git process that died, whoever may still run git. */
const STALE_LOCK_MS = 120_000;
const LOCK_RETRY_DELAYS_MS = [50, 100, 200, 400, 800, 1600];

/**
 * Runs git (argv, no shell) against a git dir and work tree. Retries while another process holds a
 * `*.lock` file and removes a lock left by a crashed git; fails with {@link WorkspaceError}.
 */
export async function runGit(
  gitDir: string | undefined,
  workTree: string,
  args: string[],
  opts: GitOptions = {},
): Promise<GitResult> {
  const argv = [
    ...(gitDir ? [`--git-dir=${gitDir}`, `--work-tree=${workTree}`] : []),
    ...FORCED_CONFIG.flatMap((c) => ['-c', c]),
    ...args,
  ];
  return withLockRetry(gitDir, `git ${args.join(' ')}`, args[0] ?? '', () =>
    spawnGit(argv, workTree, gitEnv(opts.env), opts.input),
  ).then((r) =>
    r.exitCode === 0 || opts.okCodes?.includes(r.exitCode) ? r : failed(r, `git ${args.join(' ')}`),
  );
}

function failed(r: GitResult & { stderr: string }, what: string): never {
  throw new WorkspaceError(
    `${what} failed (exit ${r.exitCode}): ${r.stderr.trim() || r.stdout.trim()}`,
    'GitFailed',
    true,
  );
}

type Spawned = {
  stdout: string;
  stderr: string;
  exitCode?: number;
  failed: boolean;
  shortMessage?: string;
  code?: string;
};

/** One trailing newline off, as git's callers expect (what execa's `stripFinalNewline` did). */
function stripFinalNewline(s: string): string {
  return s.endsWith('\r\n') ? s.slice(0, -2) : s.endsWith('\n') ? s.slice(0, -1) : s;
}

/**
 * Runs git through the worker's process starter (../spawner) rather than forking the worker: a fork of
 * the worker costs its main thread tens of ms per process (more on a loaded host), and a run's first
 * checkpoint runs two git processes (`add`, `ls-files`; the repository itself is made in-process).
 */
async function spawnGit(
  argv: string[],
  cwd: string,
  env: Record<string, string>,
  input: string | undefined,
): Promise<Spawned> {
  let r;
  try {
    r = await runProgram('git', argv, { cwd, env, ...(input !== undefined ? { input } : {}) });
  } catch (err) {
    // The process starter died under it (the program was killed with it): worth another try.
    return { stdout: '', stderr: '', failed: true, shortMessage: (err as Error).message };
  }
  const stdout = stripFinalNewline(r.stdout.toString('utf8'));
  const stderr = stripFinalNewline(r.stderr.toString('utf8'));
  if (r.spawnError !== undefined) {
    return {
      stdout,
      stderr,
      failed: true,
      shortMessage: r.spawnError,
      ...(/ENOENT/.test(r.spawnError) ? { code: 'ENOENT' } : {}),
    };
  }
  if (r.exitCode === undefined) {
    return { stdout, stderr, failed: true, shortMessage: `git was killed by ${r.signal ?? 'a signal'}` };
  }
  return { stdout, stderr, exitCode: r.exitCode, failed: r.exitCode !== 0 };
}

/**
 * Spawns (again) while a git `*.lock` file is held by another process, removing one left by a crashed
 * git; returns the last result whatever its exit code.
 */
async function withLockRetry(
  gitDir: string | undefined,
  what: string,
  command: string,
  spawn: () => Promise<Spawned>,
): Promise<GitResult & { stderr: string }> {
  for (let attempt = 0; ; attempt++) {
    let result: Spawned;
    try {
      result = await spawn();
    } catch (err) {
      throw new WorkspaceError(`cannot run git: ${(err as Error).message}`, 'GitMissing');
    }
    if (result.failed && result.exitCode === undefined) {
      const missing = result.code === 'ENOENT';
      throw new WorkspaceError(
        missing
          ? 'git is not installed or not on PATH'
          : `cannot run git: ${result.shortMessage ?? result.stderr}`,
        missing ? 'GitMissing' : 'GitFailed',
        !missing,
      );
    }
    const exitCode = result.exitCode ?? 1;
    const lock =
      exitCode === 0 ? undefined : /Unable to create '([^']+\.lock)': File exists/.exec(result.stderr)?.[1];
    if (!lock) return { stdout: result.stdout, stderr: result.stderr, exitCode };
    if (await lockIsStale(lock, gitDir)) {
      await fs.rm(lock, { force: true });
      continue;
    }
    const delay = LOCK_RETRY_DELAYS_MS[attempt];
    if (delay !== undefined) {
      await new Promise((r) => setTimeout(r, delay));
      continue;
    }
    throw new WorkspaceError(
      `git ${command}: ${lock} is held by another process (${what})`,
      'GitLocked',
      true,
    );
  }
}

/**
 * Whether a lock file was left by a git that died (a worker SIGKILLed mid-`git add`): old, or no live
 * process runs git on this repository. Every git here names its git dir on the command line, so the
 * check is exact on this host; without /proc only the age counts.
 */
export async function lockIsStale(lockFile: string, gitDir: string | undefined): Promise<boolean> {
  let st;
  try {
    st = await fs.stat(lockFile);
  } catch {
    return true; // Gone already: retrying is right.
  }
  if (Date.now() - st.mtimeMs > STALE_LOCK_MS) return true;
  if (!gitDir) return false;
  const users = await gitProcessesUsing(gitDir);
  return users !== undefined && users.length === 0;
}

/** Pids of live git processes whose command line names `gitDir`; undefined where /proc is missing. */
export async function gitProcessesUsing(gitDir: string): Promise<number[] | undefined> {
  let entries: string[];
  try {
    entries = await fs.readdir('/proc');
  } catch {
    return undefined;
  }
  const needle = `--git-dir=${gitDir}\0`;
  const found = await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (pid) => {
        try {
          const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8');
          return cmd.includes(needle) ? Number(pid) : undefined;
        } catch {
          return undefined;
        }
      }),
  );
  return found.filter((p): p is number => p !== undefined);
}

const SHA = /^[0-9a-f]{4,64}$/i;

/** Full hash of `commit` in the repository, or WorkspaceError `UnknownCommit`. */
export async function resolveCommit(gitDir: string, workTree: string, commit: string): Promise<string> {
  // Only hex: a ref name or an option-looking string ("--output=…") never reaches git's argv.
  if (!SHA.test(commit)) throw new WorkspaceError(`"${commit}" is not a commit hash`, 'UnknownCommit');
  const { stdout, exitCode } = await runGit(
    gitDir,
    workTree,
    ['rev-parse', '--verify', '--quiet', `${commit}^{commit}`],
    {
      okCodes: [1, 128],
    },
  );
  if (exitCode !== 0 || !stdout) {
    throw new WorkspaceError(`commit ${commit} is not a snapshot of ${workTree}`, 'UnknownCommit');
  }
  return stdout.trim();
}

/**
 * The commit HEAD points at, read from the ref files (what `git rev-parse --verify HEAD` prints, without
 * a process); undefined while HEAD is unborn.
 */
export async function readHead(gitDir: string): Promise<string | undefined> {
  const head = (await fs.readFile(path.join(gitDir, 'HEAD'), 'utf8')).trim();
  if (/^[0-9a-f]{40}$/.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (!ref || ref.split('/').includes('..')) {
    throw new WorkspaceError(
      `${gitDir}: HEAD is neither a commit nor a ref ("${head.slice(0, 80)}")`,
      'GitFailed',
    );
  }
  const loose = await fs.readFile(path.join(gitDir, ref), 'utf8').catch(() => undefined);
  if (loose !== undefined) return loose.trim();
  const packed = await fs.readFile(path.join(gitDir, 'packed-refs'), 'utf8').catch(() => '');
  for (const line of packed.split('\n'))
    if (line.endsWith(` ${ref}`)) return line.slice(0, line.indexOf(' '));
  return undefined;
}
