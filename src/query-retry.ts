/**
 * Queries refused by our workflow guard (workflows/interceptors.ts) succeed when asked again: the guard
 * refuses a query that reaches a worker without the run cached while the run's next workflow task waits
 * (for up to ~10 s after a worker died, on its dead sticky queue). Every client of ours asks again rather
 * than showing that refusal to a user.
 */
import type { WorkflowClientInterceptor } from '@temporalio/client';
import { EARLY_EVENTS_MESSAGE } from '../workflows/interceptors';

/** How long a refused query is asked again: past the server's sticky-queue timeout, with margin. */
const RETRY_FOR_MS = 20_000;
const PAUSE_MS = 500;

/** Whether `err` is the guard's refusal (it reaches a client as a query failure carrying its message). */
export function isRefusedQuery(err: unknown): boolean {
  const marker = EARLY_EVENTS_MESSAGE.slice(0, 60);
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.message.includes(marker)) return true;
  }
  return false;
}

/** A client interceptor that asks a refused query again until it is answered or RETRY_FOR_MS pass. */
export function retryRefusedQueries(
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => number = Date.now,
): WorkflowClientInterceptor {
  return {
    async query(input, next) {
      const deadline = now() + RETRY_FOR_MS;
      for (;;) {
        try {
          return await next(input);
        } catch (err) {
          if (!isRefusedQuery(err) || now() > deadline) throw err;
          await sleep(PAUSE_MS);
        }
      }
    },
  };
}
