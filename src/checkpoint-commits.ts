/**
 * A run that continued-as-new carries its older checkpoints without their commits (so the carry does
 * not grow with the phases): the `checkpoints` and `status` queries then show them with an empty
 * commit. Each checkpoint's own manifest file holds it; this fills it in for the CLI (list, show, fork).
 */
import fs from 'node:fs/promises';
import type { Checkpoint } from './shared/run';

/** The checkpoints with every empty commit (and time) read from the checkpoint's manifest, where it is readable. */
export async function fillCheckpointCommits(cps: readonly Checkpoint[]): Promise<Checkpoint[]> {
  return Promise.all(
    cps.map(async (c) => {
      if (c.commit || !c.manifestPath) return c;
      try {
        const m = JSON.parse(await fs.readFile(c.manifestPath, 'utf8')) as {
          checkpoint?: unknown;
          commit?: unknown;
          createdAt?: unknown;
        };
        if (m.checkpoint !== c.id || typeof m.commit !== 'string') return c;
        return {
          ...c,
          commit: m.commit,
          createdAt: c.createdAt || (typeof m.createdAt === 'string' ? m.createdAt : ''),
        };
      } catch {
        // The outputs folder may live on the worker's host only: the commit stays unknown here.
        return c;
      }
    }),
  );
}
