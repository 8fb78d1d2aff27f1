/**
 * A phase's checkpoint, taken where it costs least: by the worker running the workflow task, as a local
 * activity, when that worker is the run's host; otherwise by `checkpointPhase` on the host's queue.
 */
import { patched } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { AGENT_TURN_QUEUE_PATCH } from '../agent-queue';
import { SCRIPT_AGENT_ACTIVITY_PATCH } from '../script-agent';
import { METERED_PATCH, SCRIPT_UNMETERED_PATCH } from './agents';
import { FAILURE_TYPES_PATCH } from './budget';
import { BOUNDED_CARRY_PATCH, RUN_LENGTH_CARRY_PATCH } from './continue';
import { RUN_END_AUDIT_PATCH, TRUTHFUL_END_PATCH } from './end-patches';
import { localCheckpoint, onHost } from './proxies';
import { ROLLBACK_AUDIT_PATCH } from './rollback';
import type { ProjectRun } from './run';

/**
 * Patch id: a phase's checkpoint is a local activity (`checkpointHere`) when the worker running the
 * workflow task is the run's host, and the next phase starts in the same workflow task: no activity task
 * through the server and no workflow task for its result, one round trip of each per phase (issue 12).
 * On another host it does nothing and the checkpoint goes to the host's queue as before. Histories
 * recorded before scheduled `checkpointPhase`.
 */
export const CHECKPOINT_HERE_PATCH = 'checkpoint-here';

/**
 * The patches the run may ask for the first time in the workflow task that continues after a checkpoint
 * (the next phase's start, its budget check, continue-as-new, the run's end). Replayed, a patch first
 * asked right after a local activity was reported missing by sdk-core (./rollback, ./workflow), so they
 * are asked before it. Asking a patch again costs nothing; the first time records its marker.
 */
const ASKED_AFTER_CHECKPOINT = [
  METERED_PATCH,
  SCRIPT_UNMETERED_PATCH,
  SCRIPT_AGENT_ACTIVITY_PATCH,
  AGENT_TURN_QUEUE_PATCH,
  FAILURE_TYPES_PATCH,
  BOUNDED_CARRY_PATCH,
  RUN_LENGTH_CARRY_PATCH,
  ROLLBACK_AUDIT_PATCH,
  RUN_END_AUDIT_PATCH,
  TRUTHFUL_END_PATCH,
] as const;

/** What `checkpointPhase` is given. */
export type CheckpointArgs = Parameters<Activities['checkpointPhase']>[0];
/** What `checkpointPhase` returns. */
export type CheckpointOutcome = Awaited<ReturnType<Activities['checkpointPhase']>>;

/** Takes a phase's checkpoint (see the module doc and {@link CHECKPOINT_HERE_PATCH}). */
export async function takeCheckpoint(run: ProjectRun, args: CheckpointArgs): Promise<CheckpointOutcome> {
  if (patched(CHECKPOINT_HERE_PATCH)) {
    for (const id of ASKED_AFTER_CHECKPOINT) patched(id);
    const here = await localCheckpoint.checkpointHere({ ...args, hostId: run.st.host?.hostId });
    if (here.here) return here.result;
  }
  return onHost(run.st.host).checkpointing.checkpointPhase(args);
}
