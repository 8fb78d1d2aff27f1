/**
 * A run's host (README "Many hosts"): the run's workspace lives on one host, and every step that touches
 * it (snapshot, checkpoint, restore, gates, agent turns) goes to that host's own task queue
 * (./proxies onHost). The host is whichever worker answers `claimHost` when the run sets up its workspace.
 * When the host is gone longer than its move time, a step fails with a ScheduleToStart timeout
 * (../host-lost) and the run moves: a live worker restores the last checkpoint from the checkpoint store
 * (`adoptWorkspace`), becomes the host, and the run continues with the phase after that checkpoint, as
 * after a rollback to it. The move is in the audit trail and in the run's status.
 */
import { log, workflowInfo } from '@temporalio/workflow';
import { hostTaskQueue } from '../../src/shared/names';
import type { Checkpoint } from '../../src/shared/run';
import { hosts, localHosts } from './proxies';
import { ensureCommit, markRolledBack } from './rollback';
import type { ProjectRun } from './run';

/**
 * Patch id: a new run claims a host and sends its workspace steps and agent turns to the host's queue.
 * Runs recorded before it send them to the shared queues.
 */
export const HOST_PATCH = 'run-host-queue';

/**
 * Claims the run's host, for a new run under {@link HOST_PATCH} (asked by the workflow's entry before its
 * first await): before its workspace is set up. `local`: by a local activity (./fork QUICK_SETUP_PATCH).
 */
export async function claimRunHost(run: ProjectRun, local = false): Promise<void> {
  const claimed = local ? await localHosts.claimHost() : await hosts.claimHost();
  // A fork is set up where its parent's workspace is (its checkpoint is materialized from there), with the
  // move time of the worker that answered; if that host is gone, the setup claims another (./fork).
  const source = run.input.forkedFrom?.host;
  run.st.host =
    source && source !== claimed.hostId
      ? {
          hostId: source,
          queue: hostTaskQueue(workflowInfo().taskQueue, source),
          moveAfterMs: claimed.moveAfterMs,
        }
      : claimed;
  log.info('run placed on host', { runId: run.runId, host: run.st.host.hostId });
  run.audit.record('host', {
    event: 'placed',
    host: run.st.host.hostId,
    queue: run.st.host.queue,
    ...(source ? { forkSource: true } : {}),
  });
}

/**
 * The checkpoint a moved run restores: its latest live checkpoint (the highest phase index), or CP0 when
 * it has taken no other; undefined when it has none at all.
 */
export function moveCheckpoint(
  checkpoints: readonly Checkpoint[],
  baseline: Checkpoint | undefined,
): Checkpoint | undefined {
  let best: Checkpoint | undefined;
  for (const c of checkpoints) if (!c.rolledBack && (!best || c.phaseIndex >= best.phaseIndex)) best = c;
  return best ?? baseline;
}

/**
 * Moves the run off its lost host: a live worker restores the last checkpoint from the store and becomes
 * the host; the run continues with the phase after that checkpoint. A run with no checkpoint yet fails
 * (there is nothing to restore).
 */
export async function moveHost(run: ProjectRun, reason: string): Promise<void> {
  const { runId, st } = run;
  const from = st.host!;
  const cp = moveCheckpoint(st.checkpoints, st.baseline);
  if (!cp) {
    await run.failRun(`host ${from.hostId} was lost before the run's first checkpoint`, 'PhaseFailed', {
      host: from.hostId,
    });
    return;
  }
  await ensureCommit(run, cp);
  log.warn('host lost: moving the run', { runId, host: from.hostId, checkpoint: cp.id, reason });
  const to = await hosts.adoptWorkspace({
    runId,
    workspace: run.input.workspace,
    checkpoint: cp.id,
    commit: cp.commit,
    from: from.hostId,
  });
  st.host = to;
  const at = new Date().toISOString();
  // Whatever ran after the checkpoint is gone with the host: its phase attempts are marked rolled back.
  for (const r of st.phaseResults) {
    if (r.status === 'running') {
      r.completedAt = at;
      r.duration_ms = Date.parse(at) - Date.parse(r.startedAt);
      r.errors.push(`host ${from.hostId} lost; the run moved to ${to.hostId} at ${cp.id}`);
    }
  }
  st.nextPhase = markRolledBack(
    cp,
    st.phaseResults,
    st.checkpoints,
    run.agentRows,
    run.phases.map((p) => p.name),
  );
  run.audit.record('host', {
    event: 'moved',
    from: from.hostId,
    to: to.hostId,
    checkpoint: cp.id,
    commit: cp.commit,
    phase: run.currentPhase,
    reason: reason.slice(0, 500),
  });
  await run.audit.flush();
}
