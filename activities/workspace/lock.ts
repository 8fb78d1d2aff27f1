import path from 'node:path';

const tails = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` after every earlier call with the same workspace has settled. Git serialises writers with
 * index.lock by *failing* the second one; queueing here turns that failure into waiting, for the callers
 * in this process. (Other processes are handled by the retry in git.ts.)
 */
export async function withWorkspaceLock<T>(workspace: string, fn: () => Promise<T>): Promise<T> {
  const key = path.resolve(workspace);
  const previous = tails.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => undefined);
  tails.set(key, tail);
  try {
    return await run;
  } finally {
    // Drop the entry once nobody queued behind us, so the map does not grow with every workspace seen.
    if (tails.get(key) === tail) tails.delete(key);
  }
}
