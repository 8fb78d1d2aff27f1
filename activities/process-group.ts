/**
 * Every process an activity starts (agents, tools, gate commands) runs in a process group of its own,
 * so that cancellation and timeouts can end it together with whatever it started.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Sends a signal to a whole process group; false when the group is gone already. */
export function signalGroup(pgid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pgid) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    // ESRCH: no process left in the group.
    return false;
  }
}

/** Whether any process is left in the group, zombies included (they stay in it until reaped). */
export function groupExists(pgid: number | undefined): boolean {
  if (!pgid) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * How long an ended group may take to disappear. Its orphans (the watchdog's poller, bubblewrap's
 * pid-namespace init, whose parent died first) are reaped by pid 1, not by us; on a loaded machine that
 * takes seconds, so a fixed two-second wait let a cancelled activity return while they were still listed.
 */
export const GROUP_GONE_MS = 20_000;

/**
 * SIGKILLs the group again and again until no process of it is left, for at most `timeoutMs`. Returns
 * whether it is gone; a caller that gets false should say so in its log (the processes are dead, but
 * not yet reaped).
 */
export async function killGroupAndWait(
  pgid: number | undefined,
  timeoutMs = GROUP_GONE_MS,
): Promise<boolean> {
  if (!pgid) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Again each round: a dying shell can still fork into the group.
    signalGroup(pgid, 'SIGKILL');
    if (!groupExists(pgid)) return true;
    if (Date.now() >= deadline) return false;
    await delay(50);
  }
}
