/**
 * Every process an activity starts (agents, tools, gate commands) runs in a process group of its own,
 * so that cancellation and timeouts can end it together with whatever it started.
 */

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
