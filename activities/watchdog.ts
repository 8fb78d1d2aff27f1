/**
 * At most one live attempt per agent, on any number of hosts.
 *
 * Every agent process (script or `claude`) starts under a small POSIX-sh watchdog that leads its process
 * group. The activity renews a lease file every second while it runs; the watchdog ends the whole group
 * (SIGTERM, SIGKILL after {@link WATCHDOG_GRACE_S}) when the lease goes stale or the worker that started it
 * is gone, and also kills whatever carries the agent's marker variable outside the group (the claude
 * Bash tool starts commands in sessions of their own). So an orphan ends by itself: within about a second
 * of its worker's death on the same host, and within {@link ORPHAN_BOUND_MS} of the last lease renewal
 * whatever happened (a frozen worker, a stuck event loop). Nothing here depends on a sandbox: the
 * watchdog only needs `sh`, `kill`, `sleep`, `stat`, `date` and `grep` (and starts one `sleep` a second
 * while its lease is renewed).
 *
 * The next attempt of the same agent then: kills every marked process on its own host at once, and, when
 * the previous attempt may have run elsewhere, waits until that attempt's lease must have run out before
 * it starts its process. Heartbeat details carry what it needs ({@link AttemptLease}).
 *
 * A script agent confined by bubblewrap runs under no watchdog shell: the worker's process starter
 * (bin/spawner.mjs, `startWatched` in ./spawner) checks its lease and ends its group in the same way, with
 * no process of its own, and bubblewrap's `--die-with-parent` ends the sandbox if the starter is killed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

/** Environment variable that tags every process of an agent (all its attempts) with the agent's key. */
export const AGENT_MARK_ENV = 'ORCHESTRATOR_AGENT_MARK';
/**
 * A lease older than this (seconds) means its activity is gone: at 5 s a worker stalled by load (event
 * loops held for seconds at load 20+ on two cores) had live agents ended under it. Shorter than the agent
 * turns' heartbeat timeout (AGENT_TURN_HEARTBEAT_TIMEOUT, 30 s), on purpose: their beats come every 10 s,
 * so the last recorded lease time may be 10 s old; an orphan still ends within 10 s + {@link ORPHAN_BOUND_MS}
 * of it, before Temporal retries the turn (30 s), so the wait in {@link endEarlierAttempts} stays enough.
 */
export const LEASE_STALE_S = 10;
/** SIGTERM → SIGKILL grace the watchdog gives a group it ends. */
export const WATCHDOG_GRACE_S = 2;
/** Upper bound from the last lease renewal to the end of every process of that attempt. */
export const ORPHAN_BOUND_MS = (LEASE_STALE_S + 1 + WATCHDOG_GRACE_S + 1) * 1000;
/** How often the activity renews the lease. */
export const LEASE_RENEW_MS = 1_000;

/**
 * The watchdog. Arguments: lease file, stale seconds, parent pid, marker `NAME=value`, grace seconds,
 * then the command. It keeps the command's stdin (a prompt on a pipe), forwards SIGTERM, exits with the
 * command's status, and leaves ending the group's leftovers to its caller when the command ends normally.
 * The command gets the marker from the background subshell that becomes it (`export`, then `exec`), not
 * from `env`: one program less to start per agent turn.
 */
const WATCHDOG_SH = `
lease=$1 stale=$2 parent=$3 mark=$4 grace=$5
shift 5
exec 3<&0
(export "$mark"; exec "$@") <&3 3<&- &
child=$!
exec 3<&-
end_all() {
  kill -USR1 $$ 2>/dev/null
  echo "[watchdog] $1: ending process group $$ and processes marked $mark" >&2
  for f in $(grep -lzx -- "$mark" /proc/[0-9]*/environ 2>/dev/null); do
    p=\${f#/proc/}; p=\${p%/environ}
    kill -TERM "$p" 2>/dev/null
  done
  kill -TERM 0 2>/dev/null
  sleep "$grace" </dev/null >/dev/null 2>&1
  for f in $(grep -lzx -- "$mark" /proc/[0-9]*/environ 2>/dev/null); do
    p=\${f#/proc/}; p=\${p%/environ}
    kill -KILL "$p" 2>/dev/null
  done
  kill -KILL 0 2>/dev/null
}
ending=0
trap 'ending=1' USR1
(
  # Its stderr is a pipe to the worker: once the worker is dead, the report below would SIGPIPE this
  # poller before it ends anything. Ignored, the write just fails.
  trap '' TERM PIPE
  # Whether the lease was renewed since the last look, by the shell alone: it is newer than the mark
  # this poller leaves when it sees a renewal. $(stat) and $(date) every second were two process starts a
  # second per agent: hundreds a second with a fleet of agents, on the cores their worker needs. Only a
  # lease not renewed for two looks is measured against the clock (a loaded machine's looks come late).
  seen="$lease.seen" missed=0
  : 2>/dev/null >"$seen"
  while sleep 1 </dev/null >/dev/null 2>&1; do
    kill -0 "$parent" 2>/dev/null || { end_all "worker $parent is gone"; exit 0; }
    if [ "$lease" -nt "$seen" ]; then missed=0; : 2>/dev/null >"$seen"; continue; fi
    missed=$((missed + 1))
    [ "$missed" -lt 2 ] && continue
    m=$(stat -c %Y "$lease" 2>/dev/null || echo 0)
    [ $(( $(date +%s) - m )) -gt "$stale" ] && { end_all "lease $lease is stale"; exit 0; }
  done
) </dev/null &
poller=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
while :; do
  wait "$child"; code=$?
  kill -0 "$child" 2>/dev/null || break
done
# Ending on the poller's word: let it finish (its last step kills this shell too).
[ "$ending" = 1 ] && while kill -0 "$poller" 2>/dev/null; do wait "$poller"; done
kill -KILL "$poller" 2>/dev/null
exit "$code"
`;

/** What an attempt records in its heartbeat details so that the next attempt can end it first. */
export interface AttemptLease {
  host: string;
  /** Process group of the attempt (the watchdog's pid). */
  pgid?: number;
  /** Epoch ms of the last lease renewal (the heartbeat that carried it). */
  leaseAt: number;
}

/** The argv that runs `argv` under the watchdog. */
export function watchedCommand(
  argv: readonly [string, ...string[]],
  opts: { leaseFile: string; mark: string; markEnv?: string },
): [string, string[]] {
  return [
    'sh',
    [
      '-c',
      WATCHDOG_SH,
      'orchestrator-watchdog',
      opts.leaseFile,
      String(LEASE_STALE_S),
      String(process.pid),
      `${opts.markEnv ?? AGENT_MARK_ENV}=${opts.mark}`,
      String(WATCHDOG_GRACE_S),
      ...argv,
    ],
  ];
}

/**
 * The folder of this user's lease files, private to them. One folder per user: a shared
 * `/tmp/orchestrator-leases` made by one user (root, often) is unwritable for a worker running as another,
 * whose every agent attempt then failed with EACCES (seen running the worker image's non-root layout).
 */
export function leaseDir(): string {
  const uid = os.userInfo().uid;
  const dir = path.join(os.tmpdir(), `orchestrator-leases-${uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const owner = fs.statSync(dir).uid;
  if (owner !== uid)
    throw new Error(`${dir} belongs to uid ${owner}, not to this worker's ${uid}: remove it`);
  return dir;
}

/** A fresh lease file path for one attempt (never shared: an orphan must not see a successor's renewals). */
export function leaseFile(): string {
  return path.join(leaseDir(), `${process.pid}-${randomUUID()}.lease`);
}

/** The lease file of one attempt: created fresh, renewed by {@link Lease.renew}, removed at the end. */
export class Lease {
  constructor(readonly file: string) {
    fs.writeFileSync(file, `${process.pid}\n`);
  }

  /** Marks the attempt alive now; returns the time for the heartbeat details. */
  renew(): number {
    const now = Date.now();
    try {
      const t = new Date(now);
      fs.utimesSync(this.file, t, t);
    } catch {
      // Removed under us: the watchdog then ends the group, which is what an unknown state deserves.
    }
    return now;
  }

  release(): void {
    fs.rmSync(this.file, { force: true });
    // The watchdog's mark of the last renewal it saw.
    fs.rmSync(`${this.file}.seen`, { force: true });
  }
}

/**
 * Pids of live processes whose environment has `ORCHESTRATOR_AGENT_MARK=<mark>` (Linux /proc).
 *
 * Read synchronously on purpose: it runs at every script's start and end, over every process of the host
 * (hundreds). As promises each read cost three thread-pool round trips and an async-hook copy per promise;
 * a 300-agent team spent a third of its worker's main thread here, starving workflow tasks into timeouts.
 *
 * One scan answers every caller that asks before it runs (the next turn of the event loop): 50 agents
 * starting at once cost one pass over /proc, not 50. A pass takes 30–150 ms on a loaded machine, and 50
 * of them in a row blocked the worker's main thread long enough for running turns to miss heartbeats.
 */
export function findMarkedProcesses(mark: string, envName = AGENT_MARK_ENV): Promise<number[]> {
  return new Promise((resolve) => {
    let batch = pendingScans.get(envName);
    if (!batch) {
      const marks = new Map<string, ((pids: number[]) => void)[]>();
      pendingScans.set(envName, (batch = marks));
      setImmediate(() => {
        pendingScans.delete(envName);
        const found = findMarkedProcessesSync(new Set(marks.keys()), envName);
        for (const [m, waiters] of marks) for (const done of waiters) done(found.get(m) ?? []);
      });
    }
    const waiters = batch.get(mark);
    if (waiters) waiters.push(resolve);
    else batch.set(mark, [resolve]);
  });
}

/** Callers waiting for the next scan, by environment variable name, then by mark. */
const pendingScans = new Map<string, Map<string, ((pids: number[]) => void)[]>>();

/** One pass over /proc: the pids carrying each of `marks` in `envName`. */
function findMarkedProcessesSync(marks: Set<string>, envName: string): Map<string, number[]> {
  const found = new Map<string, number[]>();
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return found;
  }
  const key = Buffer.from(`${envName}=`);
  const inner = Buffer.from(`\0${envName}=`);
  const self = String(process.pid);
  for (const e of entries) {
    if (e === self || !/^\d+$/.test(e)) continue;
    const env = readEnviron(e);
    if (!env) continue;
    // The variable is the first entry, or follows a NUL; its value runs to the next NUL or the end.
    let start = -1;
    if (env.subarray(0, key.length).equals(key)) start = key.length;
    else {
      const i = env.indexOf(inner);
      if (i >= 0) start = i + inner.length;
    }
    if (start < 0) continue;
    const end = env.indexOf(0, start);
    const value = env.toString('utf8', start, end < 0 ? env.length : end);
    if (!marks.has(value)) continue;
    const pids = found.get(value);
    if (pids) pids.push(Number(e));
    else found.set(value, [Number(e)]);
  }
  return found;
}

/** One buffer for every environ read: `readFileSync` of a /proc file allocates 64 KiB a process. */
const environBuffer = Buffer.allocUnsafe(256 * 1024);

/** A process's environ (a view of a shared buffer, valid until the next read); undefined when gone. */
function readEnviron(pid: string): Buffer | undefined {
  const file = `/proc/${pid}/environ`;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, environBuffer, n, environBuffer.length - n, null);
      if (r === 0) return environBuffer.subarray(0, n);
      n += r;
      // Larger than the buffer (rare): read it whole.
      if (n === environBuffer.length) return fs.readFileSync(file);
    }
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** SIGKILLs every process carrying the mark, repeating while new ones appear. Returns what it killed. */
export async function sweepMarked(mark: string, envName = AGENT_MARK_ENV, rounds = 5): Promise<number[]> {
  const killed: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const pids = await findMarkedProcesses(mark, envName);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // gone already
      }
    }
    await delay(50);
  }
  return killed;
}

/** Reads the lease an earlier attempt left in its heartbeat details, if any. */
export function previousLease(details: unknown): AttemptLease | undefined {
  const d = details as Partial<AttemptLease> | undefined;
  if (!d || typeof d.leaseAt !== 'number' || typeof d.host !== 'string') return undefined;
  return { host: d.host, leaseAt: d.leaseAt, ...(typeof d.pgid === 'number' ? { pgid: d.pgid } : {}) };
}

/**
 * Ends every earlier attempt of the agent before a new one starts: marked processes on this host now;
 * an attempt on another host by waiting out its lease (its watchdog ends it). Returns what it did.
 */
export async function endEarlierAttempts(
  mark: string,
  previous: AttemptLease | undefined,
  signal: AbortSignal,
  markEnv = AGENT_MARK_ENV,
): Promise<{ killed: number[]; waitedMs: number }> {
  const killed = await sweepMarked(mark, markEnv);
  let waitedMs = 0;
  if (previous && previous.host !== os.hostname()) {
    waitedMs = Math.max(0, previous.leaseAt + ORPHAN_BOUND_MS - Date.now());
    if (waitedMs > 0) await delay(waitedMs, undefined, { signal }).catch(() => undefined);
  }
  return { killed, waitedMs };
}

/** Whether `file` names an executable: a path (relative to `cwd`) or a name found on PATH. */
export function findProgram(file: string, cwd: string, pathVar: string | undefined): boolean {
  const executable = (p: string) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (file.includes('/')) return executable(path.resolve(cwd, file));
  return (pathVar ?? '').split(':').some((dir) => dir && executable(path.join(dir, file)));
}

/** A process's command line, spaces for NULs, capped; empty when it is gone. */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200);
  } catch {
    return '';
  }
}

/** SIGKILL to one process; gone already is fine. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}
