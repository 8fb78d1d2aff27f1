/**
 * Where a run's workspace lives (README "Many hosts"). A run asks `claimHost` on the shared task queue when
 * it sets up its workspace: whichever worker answers becomes the run's host, and the run sends every step
 * that touches the workspace to that host's own queue (src/shared/names hostTaskQueue). When the host is
 * gone longer than its move time, the run asks `adoptWorkspace` on the shared queue: a live worker fetches
 * the run's checkpoints from the checkpoint store every host reaches (./store), restores the last one into
 * its own workspace root, and becomes the run's host.
 */
import fs from 'node:fs/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { formatZodIssues } from '../../config/errors';
import type { AppConfig } from '../../config/env';
import type { Logger } from '../../src/logger';
import { SafeNameSchema } from '../../src/shared/ids';
import { hostTaskQueue } from '../../src/shared/names';
import { initWorkspace, readHold, restoreWorkspace, shadowGitDir, STATE_DIR, toFailure } from '../workspace';
import { fetchCheckpoints, pushCheckpoint, storeHasCheckpoint } from './store';

export { pushCheckpoint, fetchCheckpoints, storeRepo, checkpointRef } from './store';

/** A run's host, as the run records it: the host id, its queue and how long it may be gone. */
export interface HostPlacement {
  hostId: string;
  /** `<queue>-host-<id>`: workspace steps; agent turns go to `<that>-agents`. */
  queue: string;
  /** The ScheduleToStart timeout of every activity sent to the host: past it, the run moves. */
  moveAfterMs: number;
  /**
   * Whether this host pushes checkpoints to a checkpoint store (`ORCHESTRATOR_CHECKPOINT_STORE`). A team
   * on a host without one takes no checkpoints: nothing could move from them (`adoptWorkspace` needs the
   * store), so they would only cost a snapshot per agent round.
   */
  store?: boolean;
}

const absPath = z.string().startsWith('/', 'must be an absolute path');
const AdoptInput = z.object({
  runId: SafeNameSchema,
  workspace: absPath,
  checkpoint: z.string().min(1),
  commit: z.string().min(1),
  /** The host the run lost (logged). */
  from: z.string().min(1),
  /**
   * The run the checkpoint belongs to when it is not `runId`'s own: a fork whose parent's host is gone is
   * set up from its parent's checkpoint in the store. The workspace must then be new or empty (or this
   * run's own unfinished setup), as for materializeCheckpoint.
   */
  sourceRunId: SafeNameSchema.optional(),
});
const RestoreHereInput = z.object({
  /** The run's host; absent for a run without one (its steps go to the shared queue: any worker). */
  hostId: z.string().min(1).optional(),
  workspace: absPath,
  commit: z.string().min(1),
});

/** Builds the host activities (they run on the shared task queue: any live worker answers). */
export function createHostActivities(deps: { config: AppConfig; logger: Logger }) {
  const { config } = deps;
  const log = deps.logger.child({ component: 'host' });
  const placement = (): HostPlacement => ({
    hostId: config.host.id,
    queue: hostTaskQueue(config.temporal.taskQueue, config.host.id),
    moveAfterMs: config.host.moveAfterMs,
    store: config.host.checkpointStore !== undefined,
  });
  return {
    /** This worker's host: the run that asks keeps its workspace here. */
    claimHost(): Promise<HostPlacement> {
      return Promise.resolve(placement());
    },

    /**
     * A rollback's restore, called as a local activity by the worker running the run's workflow task
     * (workflows/project/rollback): done here when this worker is the run's host (or the run has none),
     * so the run continues in the same workflow task, without the two round trips of an activity through
     * the server; `{ restored: false }`, having touched nothing, on any other host, and the run then sends
     * `restoreWorkspace` to its host's queue as before. The restore is exact from whatever state the
     * workspace is in, so a retry, or the next worker's attempt after this one died mid-restore (noticed
     * when the workflow task times out), is safe.
     */
    async restoreHere(input: z.input<typeof RestoreHereInput>): Promise<{ restored: boolean }> {
      const parsed = RestoreHereInput.safeParse(input);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: 'InvalidActivityInput',
          message: `restoreHere: ${formatZodIssues(parsed.error).join('; ')}`,
          nonRetryable: true,
        });
      }
      const a = parsed.data;
      if (a.hostId !== undefined && a.hostId !== config.host.id) return { restored: false };
      const started = Date.now();
      await restoreWorkspace({ workspace: a.workspace, commit: a.commit }).catch(toFailure);
      log.info({ workspace: a.workspace, commit: a.commit, ms: Date.now() - started }, 'restoreHere done');
      return { restored: true };
    },

    /**
     * Takes over a run whose host was lost: its checkpoints are fetched from the checkpoint store into a
     * shadow repository of this host's workspace, and `commit` (checkpoint `checkpoint`) is restored there
     * exactly. Returns this host. With `sourceRunId` (a fork whose parent's host is gone), only that run's
     * checkpoint is fetched, into a workspace that must be new or empty.
     */
    async adoptWorkspace(input: z.input<typeof AdoptInput>): Promise<HostPlacement> {
      const parsed = AdoptInput.safeParse(input);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: 'InvalidActivityInput',
          message: `adoptWorkspace: ${formatZodIssues(parsed.error).join('; ')}`,
          nonRetryable: true,
        });
      }
      const a = parsed.data;
      const store = config.host.checkpointStore;
      if (!store) {
        throw ApplicationFailure.create({
          type: 'NoCheckpointStore',
          message: `run ${a.runId} lost its host ${a.from}, and host ${config.host.id} has no checkpoint store (ORCHESTRATOR_CHECKPOINT_STORE) to restore ${a.checkpoint} from`,
          nonRetryable: true,
        });
      }
      const source = a.sourceRunId ?? a.runId;
      if (a.sourceRunId) {
        if (!(await storeHasCheckpoint({ store, runId: a.sourceRunId, checkpoint: a.checkpoint }))) {
          throw ApplicationFailure.create({
            type: 'CheckpointNotInStore',
            message: `fork ${a.runId}: checkpoint ${a.checkpoint} of run ${a.sourceRunId} is not in the checkpoint store ${store} (its host ${a.from} is gone, and with it the run's workspace)`,
            nonRetryable: true,
          });
        }
        await ensureForkTarget(a.workspace, a.runId);
      }
      const started = Date.now();
      await beating('adoptWorkspace', async () => {
        try {
          await initWorkspace({ workspace: a.workspace, holder: a.runId });
          await fetchCheckpoints({
            store,
            runId: source,
            shadowGitDir: shadowGitDir(a.workspace),
            ...(a.sourceRunId ? { checkpoint: a.checkpoint } : {}),
          });
          await restoreWorkspace({ workspace: a.workspace, commit: a.commit });
        } catch (err) {
          toFailure(err);
        }
      });
      log.info(
        {
          runId: a.runId,
          from: a.from,
          to: config.host.id,
          checkpoint: a.checkpoint,
          ...(a.sourceRunId ? { sourceRunId: a.sourceRunId } : {}),
          ms: Date.now() - started,
        },
        a.sourceRunId ? 'fork set up on this host from the checkpoint store' : 'run moved to this host',
      );
      return placement();
    },
  };
}

/**
 * A fork's target on this host: new, empty, or holding only this fork's own unfinished setup (a retried
 * attempt); anything else is refused (`TargetNotEmpty`), since the restore would replace it.
 */
async function ensureForkTarget(workspace: string, runId: string): Promise<void> {
  let entries: string[];
  try {
    entries = (await fs.readdir(workspace)).filter((e) => e !== STATE_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (entries.length === 0 || (await readHold(workspace))?.runId === runId) return;
  throw ApplicationFailure.create({
    type: 'TargetNotEmpty',
    message: `fork target workspace ${workspace} is not empty (${entries.length} entries: ${entries.slice(0, 3).join(', ')}); fork into a new or empty directory`,
    nonRetryable: true,
  });
}

/**
 * Pushes a checkpoint just taken to the store, when this host has one (a no-op otherwise): called by the
 * worker's checkpointPhase, on the run's host, right after the snapshot.
 */
export async function storeCheckpoint(
  config: AppConfig,
  args: { workspace: string; runId: string; checkpoint: string; commit: string },
): Promise<void> {
  const store = config.host.checkpointStore;
  if (!store) return;
  await beating('storeCheckpoint', () =>
    pushCheckpoint({
      store,
      runId: args.runId,
      shadowGitDir: shadowGitDir(args.workspace),
      checkpoint: args.checkpoint,
      commit: args.commit,
    }),
  );
}

/**
 * Runs `fn` heartbeating every second (when called as an activity), so a worker that dies mid-push or
 * mid-restore is noticed within the heartbeat timeout and a long first push is not taken for one.
 */
async function beating<T>(what: string, fn: () => Promise<T>): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined;
  }
  const started = Date.now();
  const beat = () => ctx?.heartbeat({ activity: what, elapsedMs: Date.now() - started });
  // None at once: the server times the heartbeat from the attempt's start, and a push after every
  // checkpoint would pay a round trip and a write of the run's state for a beat that says nothing.
  const interval = setInterval(beat, 1_000);
  try {
    return await fn();
  } finally {
    clearInterval(interval);
  }
}

export type HostActivities = ReturnType<typeof createHostActivities>;
