/**
 * Ending a `claude` run without leaving anything behind.
 *
 * The CLI is spawned detached (its own process group), but that alone is not enough: its Bash tool starts
 * every command in a NEW session (setsid), so a tool's processes are outside the CLI's group. On SIGTERM
 * the CLI kills its tools itself; on SIGKILL (after the grace period, or when the worker dies) they would
 * survive as orphans. So every process of a turn also carries a marker variable in its environment
 * (inherited by all descendants), and a sweep kills whatever still carries it. On Linux the sweep reads
 * /proc; elsewhere only the process-group kill is available.
 */
import fs from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { signalGroup } from '../process-group';

export { signalGroup };

/** Environment variable that tags every process of a CLI run with its session id. */
export const SESSION_MARKER_ENV = 'ORCHESTRATOR_CLAUDE_SESSION';

/** Whether a process (or, with a negative id, a process group) still exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Pids of live processes whose environment has `SESSION_MARKER_ENV=<sessionId>`. Empty where /proc is
 * unavailable. Zombies have an empty environ, so they never match.
 */
export async function findSessionProcesses(sessionId: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await fs.readdir('/proc');
  } catch {
    return [];
  }
  const needle = Buffer.from(`\0${SESSION_MARKER_ENV}=${sessionId}\0`);
  const self = String(process.pid);
  const found = await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e) && e !== self)
      .map(async (pid) => {
        try {
          // Prefix a NUL so the first variable matches the same needle as the others.
          const env = Buffer.concat([
            Buffer.from('\0'),
            await fs.readFile(`/proc/${pid}/environ`),
            Buffer.from('\0'),
          ]);
          return env.includes(needle) ? Number(pid) : undefined;
        } catch {
          return undefined; // exited meanwhile, or not ours to read
        }
      }),
  );
  return found.filter((p): p is number => p !== undefined);
}

/**
 * SIGKILLs every process tagged with the session id, repeating (at most `rounds` times, 50 ms apart) until
 * none is left: a dying shell can still fork, and a killed process keeps its environment until it has
 * exited. Returns the pids it signalled.
 */
export async function sweepSessionProcesses(sessionId: string, rounds = 5): Promise<number[]> {
  const killed = new Set<number>();
  for (let i = 0; i < rounds; i++) {
    const pids = await findSessionProcesses(sessionId);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // gone already
      }
    }
    await delay(50);
  }
  return [...killed];
}

/**
 * Ends a running CLI: SIGTERM to its group (the CLI then stops its tools and flushes its transcript),
 * SIGKILL to the group if it has not exited within `graceMs`. Leftovers outside the group are the
 * caller's to sweep once the process has exited.
 */
export async function terminateGroup(
  pgid: number,
  exited: Promise<unknown>,
  graceMs: number,
): Promise<'term' | 'kill'> {
  signalGroup(pgid, 'SIGTERM');
  const ac = new AbortController();
  try {
    const outcome = await Promise.race([
      exited.then(() => 'exited' as const),
      delay(graceMs, 'timeout' as const, { signal: ac.signal }),
    ]);
    if (outcome === 'exited') return 'term';
    signalGroup(pgid, 'SIGKILL');
    return 'kill';
  } finally {
    ac.abort(); // stop the grace timer, or it would hold the event loop open
  }
}
