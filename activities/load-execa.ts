/**
 * execa, imported on first use rather than at start. A worker polls long before any activity runs a
 * process, and execa with its dependencies is about 120 ES modules, a measurable part of a worker's
 * start (`npm run bench:startup`); the first process an activity starts pays for it once.
 */
import type { execa as Execa } from 'execa';

let loading: Promise<typeof Execa> | undefined;

/** The execa function; concurrent first callers share one import, and a failed import is retried. */
export function loadExeca(): Promise<typeof Execa> {
  loading ??= import('execa').then(
    (m) => m.execa,
    (err: unknown) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}
