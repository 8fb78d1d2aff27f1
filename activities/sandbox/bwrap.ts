/**
 * The sandbox every agent-chosen program runs in: bubblewrap (`bwrap`). The whole file system is
 * read-only; the workspace is the only writable path (plus a private scratch for TMPDIR/HOME); the
 * folders that hold other runs' workspaces and outputs, the worker's HOME and its state are covered by
 * empty read-only tmpfs mounts; the key files of /etc are unreadable; the command sees only its own
 * processes (new pid namespace, so /proc/<worker>/environ is out of reach) and, unless it needs it, no
 * network (a new network namespace has its own loopback only). Capabilities are dropped, so root inside
 * cannot read past file modes.
 *
 * {@link bwrapArgs} is pure: the mount plan is decided from paths alone and tested without bwrap.
 */
import path from 'node:path';

/** What one sandboxed program may see and touch. */
export interface SandboxPolicy {
  /** The only writable folder (bound read-write); the program runs inside it. */
  workspace: string;
  /** Working directory, inside the workspace; default the workspace. */
  cwd?: string;
  /** Further read-write folders (e.g. `claude`'s own HOME for its sessions). */
  writable?: string[];
  /** Folders covered by an empty read-only tmpfs (their contents vanish), before the binds above. */
  hide: string[];
  /** Folders inside hidden ones that stay visible read-only (the program's own PATH, the orchestrator). */
  reveal?: string[];
  /** Folders inside the workspace that stay read-only (the shadow repository). */
  readOnlyInside?: string[];
  /** Files replaced by an unreadable one (`/etc/shadow`, …). */
  denyFiles?: string[];
  /** Keep the host's network (127.0.0.1 included); otherwise a new network namespace. */
  network: boolean;
  /** The complete environment of the program: bwrap's own, which it hands on (never in its argv). */
  env: Record<string, string>;
  /** Private writable scratch folder (a tmpfs) inside a hidden one, used as TMPDIR and HOME. */
  scratch?: string;
}

export interface BwrapArgsOptions {
  /** The file bound over each of `denyFiles`: mode 000, so a program without capabilities cannot read it. */
  denyFile: string;
  /** Capabilities are dropped when bwrap runs as root (a non-root bwrap grants none anyway). */
  isRoot: boolean;
}

type Mount =
  | { kind: 'hide'; at: string }
  | { kind: 'reveal'; at: string }
  | { kind: 'rw'; at: string }
  | { kind: 'ro'; at: string }
  | { kind: 'scratch'; at: string };

const ORDER: Record<Mount['kind'], number> = { hide: 0, reveal: 1, rw: 2, ro: 3, scratch: 4 };

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

function isInside(parent: string, p: string): boolean {
  const rel = path.relative(parent, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The mounts in the order bwrap must apply them: outer folders before inner ones, so that hiding a
 * parent and then binding a child back works at any depth (HOME hidden, the workspace under it bound).
 */
export function mountPlan(p: SandboxPolicy): Mount[] {
  const mounts: Mount[] = [];
  const add = (kind: Mount['kind'], at: string) => {
    const abs = path.resolve(at);
    if (abs === '/') return;
    if (!mounts.some((m) => m.kind === kind && m.at === abs)) mounts.push({ kind, at: abs });
  };
  for (const h of p.hide) add('hide', h);
  const hidden = mounts.map((m) => m.at);
  // Only what a hide covers needs revealing; elsewhere the read-only root shows it already.
  for (const r of p.reveal ?? []) if (hidden.some((h) => isInside(h, path.resolve(r)))) add('reveal', r);
  add('rw', p.workspace);
  for (const w of p.writable ?? []) add('rw', w);
  for (const r of p.readOnlyInside ?? []) add('ro', r);
  if (p.scratch) add('scratch', p.scratch);
  return mounts.sort((a, b) => depth(a.at) - depth(b.at) || ORDER[a.kind] - ORDER[b.kind]);
}

/** The host name inside the sandbox (its own UTS namespace). */
export const SANDBOX_HOSTNAME = 'orchestrator-sandbox';

/** The full bwrap argv (without `bwrap` itself) that runs `argv` under `policy`. */
export function bwrapArgs(policy: SandboxPolicy, argv: readonly string[], o: BwrapArgsOptions): string[] {
  const args = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc'];
  const plan = mountPlan(policy);
  for (const m of plan) {
    if (m.kind === 'hide') args.push('--tmpfs', m.at);
    else if (m.kind === 'reveal' || m.kind === 'ro') args.push('--ro-bind', m.at, m.at);
    else if (m.kind === 'rw') args.push('--bind', m.at, m.at);
    else args.push('--perms', '1777', '--tmpfs', m.at);
  }
  for (const f of policy.denyFiles ?? []) args.push('--ro-bind', o.denyFile, f);
  // Hidden folders become read-only last: the binds above needed to create their mount points first.
  for (const m of plan) if (m.kind === 'hide') args.push('--remount-ro', m.at);
  // A host name of its own with its own pids: an agent's `orchestrator` reads a poller `<pid>@<host>` of
  // this host as a worker it can probe (src/run-record goneLocalPoller), and from inside the sandbox's
  // pid namespace every worker's pid would look gone.
  args.push(
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--hostname',
    SANDBOX_HOSTNAME,
    '--die-with-parent',
  );
  if (!policy.network) args.push('--unshare-net');
  if (o.isRoot) args.push('--cap-drop', 'ALL');
  // No --setenv: the environment (an agent's capability, claude's API key) would be in bwrap's argv,
  // which every process on the host can read in /proc/<pid>/cmdline. bwrap gets exactly `policy.env`
  // as its own environment instead (readable by its owner only) and hands it on unchanged.
  args.push('--chdir', policy.cwd ?? policy.workspace, '--', ...argv);
  return args;
}
