/**
 * Rollback: restore the workspace exactly to a checkpoint (by request: signal or update; or by a
 * `rollback` gate) and continue after it. Work after the checkpoint is marked rolled back, never removed:
 * its cost stays in the totals.
 */
import { CancellationScope, log, patched } from '@temporalio/workflow';
import { OPERATOR } from '../../src/shared/identity';
import type { RollbackRequest } from '../../src/shared/messages';
import type { AgentStatusRow, Checkpoint, PhaseResult } from '../../src/shared/run';
import type { PhaseSpec } from '../../src/shared/spec';
import { countRollback } from './metrics';
import { localRestore, onHost, workspace } from './proxies';
import type { ProjectRun } from './run';

/**
 * Patch id: a rollback's audit entries are no longer appended by an appendAudit call of their own before
 * the next phase starts (a round trip on the way from a rollback to the next agent); like a completed
 * phase's, they ride with the next checkpoint, or are written by a pause, continue-as-new or the run's end.
 * Until then they are workflow state: a crash loses none, and the chain is computed as they are recorded.
 * Histories recorded before made that call. (Asked in ./workflow; defined here for {@link restoreForRollback}.)
 */
export const ROLLBACK_AUDIT_PATCH = 'rollback-audit-rides';

/**
 * Patch id: a rollback restores the workspace by a local activity (`restoreHere`) when the worker running
 * the workflow task is the run's host, and the next phase starts in the same workflow task: no activity
 * task through the server, no workflow task for its result (two round trips and a workflow task on the way
 * from a rollback to the next agent, issue 16). On another host the local activity does nothing and the
 * restore goes to the host's queue as before. Histories recorded before scheduled `restoreWorkspace`.
 */
export const LOCAL_RESTORE_PATCH = 'rollback-local-restore';

/**
 * Restores the workspace to `commit` for a rollback: here, by a local activity, when this worker is the
 * run's host (see {@link LOCAL_RESTORE_PATCH}); otherwise by `restoreWorkspace` on the host's queue.
 */
async function restoreForRollback(run: ProjectRun, commit: string): Promise<void> {
  const args = { workspace: run.input.workspace, commit };
  if (patched(LOCAL_RESTORE_PATCH)) {
    // Asked before the local activity, not first right after it: replayed, a patch first asked right after
    // a local activity was reported missing by sdk-core (./workflow, ./hosts). ./workflow asks it next.
    patched(ROLLBACK_AUDIT_PATCH);
    const { restored } = await localRestore.restoreHere({ ...args, hostId: run.st.host?.hostId });
    if (restored) return;
  }
  await onHost(run.st.host).workspace.restoreWorkspace(args);
}

/**
 * Marks everything after checkpoint `cp` rolled back: phase results and checkpoints of later phases, and
 * forgets the agent rows of later phases. Returns the phase index to continue at.
 */
export function markRolledBack(
  cp: Pick<Checkpoint, 'id' | 'phaseIndex'>,
  phaseResults: PhaseResult[],
  checkpoints: Checkpoint[],
  agentRows: Map<string, AgentStatusRow>,
  phaseNames: readonly string[],
): number {
  for (const r of phaseResults) {
    if (r.index > cp.phaseIndex && r.status !== 'rolled_back') {
      r.status = 'rolled_back';
      r.rolledBackBy = cp.id;
    }
  }
  for (const c of checkpoints) if (c.phaseIndex > cp.phaseIndex) c.rolledBack = true;
  for (const row of agentRows.values()) {
    if (phaseNames.indexOf(row.phase) > cp.phaseIndex) agentRows.delete(row.workflowId);
  }
  return cp.phaseIndex + 1;
}

/** The last live checkpoint before phase `index`: where a `rollback` gate of that phase goes back to. */
export function previousCheckpoint(
  checkpoints: readonly Checkpoint[],
  index: number,
): Checkpoint | undefined {
  return [...checkpoints].reverse().find((c) => !c.rolledBack && c.phaseIndex < index);
}

/** Rolls the run back to a live checkpoint (validated by the request's handler or chosen by a gate). */
export async function performRollback(
  run: ProjectRun,
  req: RollbackRequest & { source: string },
): Promise<void> {
  const { runId, st } = run;
  run.state = 'rolling_back';
  const cp = run.liveCheckpoint(req.checkpoint)!;
  log.info('rolling back', { runId, checkpoint: cp.id, reason: req.reason, source: req.source });
  await CancellationScope.nonCancellable(async () => {
    await ensureCommit(run, cp);
    await restoreForRollback(run, cp.commit);
  });
  const at = new Date().toISOString();
  const next = markRolledBack(
    cp,
    st.phaseResults,
    st.checkpoints,
    run.agentRows,
    run.phases.map((p) => p.name),
  );
  st.rollbacks.push({ to: cp.id, reason: req.reason, at, fromPhase: run.currentPhase });
  countRollback(runId, req.source ?? 'operator');
  run.audit.record(
    'rollback',
    { to: cp.id, commit: cp.commit, reason: req.reason, source: req.source, fromPhase: run.currentPhase },
    req.source === 'gate' ? 'workflow' : OPERATOR,
  );
  st.nextPhase = next;
  if (req.source !== 'gate') run.rollbackRequestsServed += 1;
  run.state = 'running';
}

/** A `rollback` gate failed: back to the previous live checkpoint, or to the snapshot of the phase start. */
export async function gateRollback(
  run: ProjectRun,
  index: number,
  phase: PhaseSpec,
  gates: string[],
  startCommit?: string,
): Promise<void> {
  const reason = `gate(s) ${gates.join(', ')} failed in phase "${phase.name}"`;
  const previous = previousCheckpoint(run.st.checkpoints, index);
  if (previous) {
    await performRollback(run, { checkpoint: previous.id, reason, source: 'gate' });
    return;
  }
  if (!startCommit)
    await run.failRun(`${reason}: no checkpoint to roll back to`, 'PhaseFailed', {
      phase: phase.name,
      gates,
    });
  await CancellationScope.nonCancellable(() => restoreForRollback(run, startCommit!));
  run.st.rollbacks.push({
    to: `start of ${phase.name}`,
    reason,
    at: new Date().toISOString(),
    fromPhase: phase.name,
  });
  countRollback(run.runId, 'gate');
  run.audit.record('rollback', {
    to: `start of ${phase.name}`,
    commit: startCommit,
    reason,
    source: 'gate',
    fromPhase: phase.name,
  });
}

/** A checkpoint of an earlier execution comes without its commit (./carry-runs): its manifest has it. */
export async function ensureCommit(run: ProjectRun, cp: Checkpoint): Promise<void> {
  if (cp.commit) return;
  const found = await workspace.readCheckpointCommit({
    outputsDir: run.input.outputsDir,
    runId: run.runId,
    phase: cp.phase,
    checkpoint: cp.id,
  });
  cp.commit = found.commit;
  cp.createdAt ||= found.createdAt;
}
