/**
 * `projectWorkflow`: runs an intake's phases in order. Each phase starts its agents (child
 * `agentWorkflow`s) by its strategy, validates its artifacts and takes checkpoint CP<n> (a shadow-git
 * snapshot plus a manifest): ./phase. A rollback, by signal or update, cancels in-flight agents, restores
 * the workspace exactly and continues after the checkpoint: ./rollback. History stays small: results
 * carry references, and the run continues-as-new every few phases: ./continue, ./carry.
 *
 * Budgets: a ledger (src/shared/budget) lives in the workflow state and in the continue-as-new carry, so a
 * crash or a rollback never loses or repeats a charge. Every agent child reserves before it starts and is
 * charged its real spend when it returns (./agents, ./budget). An exhausted budget pauses the run until
 * update `raiseBudget` (or fails it, per `constraints.on_budget_exceeded`). Governance: the phase's gates
 * run after its agents and before its checkpoint; a failing gate retries the phase, rolls back, waits for
 * update `approve`, or fails the run (./gates). Every decision goes into the audit trail (workflows/audit).
 *
 * This file holds the main loop; the run's state is one ProjectRun (./run), its handlers are in ./handlers.
 */
import {
  allHandlersFinished,
  CancellationScope,
  condition,
  ContinueAsNew,
  isCancellation,
  log,
  patched,
} from '@temporalio/workflow';
import { totals as ledgerTotals } from '../../src/shared/budget';
import type { PhaseResult } from '../../src/shared/run';
import type { ProjectWorkflowInput } from '../../src/shared/spec';
import { onHost } from './proxies';
import { isHostLost } from '../host-lost';
import { HOST_PATCH, moveHost } from './hosts';
import type { ProjectCarry } from './carry';
import { continueIfDue } from './continue';
import { QUICK_SETUP_PATCH, startRun } from './fork';
import { gateRollback, performRollback, ROLLBACK_AUDIT_PATCH } from './rollback';
import { setProjectHandlers } from './handlers';
import {
  CHECKPOINT_AUDIT_PATCH,
  needsStartSnapshot,
  newPhaseResult,
  nextAttempt,
  type PhaseOutcome,
  runPhase,
} from './phase';
import { RUN_END_AUDIT_PATCH, TRUTHFUL_END_PATCH } from './end-patches';
import { failureMessage, parseProjectInput, ProjectRun, type ProjectSummary } from './run';
import { tracePhase } from '../trace';

export { ROLLBACK_AUDIT_PATCH } from './rollback';
export { RUN_END_AUDIT_PATCH, TRUTHFUL_END_PATCH } from './end-patches';

class RollbackRequested extends Error {}

export async function projectWorkflow(
  raw: ProjectWorkflowInput,
  carry?: ProjectCarry,
): Promise<ProjectSummary> {
  const run = new ProjectRun(parseProjectInput(raw), carry);
  setProjectHandlers(run);
  // Asked before the first await: replayed, a patch first asked right after a local activity (the
  // visibility init's) was reported missing by sdk-core, a nondeterminism error (./hosts).
  const hosted = !carry && patched(HOST_PATCH);
  const quickSetup = !carry && patched(QUICK_SETUP_PATCH);
  try {
    await run.visibility.init();
    run.publish();
    if (!carry) await startRun(run, hosted, quickSetup);
    run.state = 'running';
    let phasesThisRun = 0;
    while (run.st.nextPhase < run.phases.length) {
      let moved = false;
      try {
        if (run.pendingRollback) {
          const req = run.pendingRollback;
          run.pendingRollback = undefined;
          await performRollback(run, req);
          run.publish();
          if (!patched(ROLLBACK_AUDIT_PATCH)) await run.audit.flush();
          continue;
        }
        moved = await runPhaseAttempt(run);
      } catch (err) {
        // The run's host was gone past its move time (only a run with a host has steps that say so).
        if (!run.st.host || !isHostLost(err)) throw err;
        await moveHost(run, failureMessage(err));
        run.publish();
        continue;
      }
      run.publish();
      if (moved) {
        phasesThisRun += 1;
        await continueIfDue(run, phasesThisRun);
      }
    }
    run.currentPhase = undefined;
    run.state = 'completed';
    run.publish();
    // Recorded before the manifest, so that the manifest holds the trail's final head.
    run.audit.record('run', {
      event: 'completed',
      totals: run.totals(),
      budget: ledgerTotals(run.st.ledger),
    });
    // The last entries ride with the manifest's write (one activity instead of two); flush writes what did
    // not fit in one batch.
    const last = patched(RUN_END_AUDIT_PATCH) ? run.audit.ride() : [];
    const manifestPath = await run.writeRunManifest(last);
    run.audit.written(last);
    await run.audit.flush();
    await condition(allHandlersFinished);
    return run.summary(manifestPath);
  } catch (err) {
    await recordEnd(run, err);
    throw err;
  }
}

/**
 * Runs the next phase once and acts on how it ended (retry, rollback, failure). True when the phase
 * completed and the run moved on to the next one.
 */
async function runPhaseAttempt(run: ProjectRun): Promise<boolean> {
  const { runId, st, audit } = run;
  const index = st.nextPhase;
  const phase = run.phases[index]!;
  run.currentPhase = phase.name;
  const attempt = nextAttempt(st.phaseResults, index);
  const result: PhaseResult = newPhaseResult(phase.name, index, attempt, new Date().toISOString());
  st.phaseResults.push(result);
  if (phase.skip) {
    result.status = 'skipped';
    result.completedAt = result.startedAt;
    result.duration_ms = 0;
    st.nextPhase += 1;
    return false;
  }
  log.info('phase started', { runId, phase: phase.name, attempt });
  audit.record('phase', { event: 'started', phase: phase.name, attempt });
  run.publish();
  // A `rollback` gate with no earlier checkpoint rolls back to the phase start: snapshot it first.
  const startCommit = needsStartSnapshot(phase, st.checkpoints, index)
    ? (
        await onHost(run.st.host).workspace.snapshotWorkspace({
          workspace: run.input.workspace,
          message: `pre-${phase.name} (attempt ${attempt})`,
        })
      ).commit
    : undefined;
  let outcome = { kind: 'failed' } as PhaseOutcome;
  run.phaseScope = new CancellationScope();
  try {
    await run.phaseScope.run(async () => {
      // A span around the attempt when the worker exports traces; otherwise exactly runPhase's promise.
      const info = { runId, phase: phase.name, index, attempt };
      outcome = await tracePhase(info, () => runPhase(run, index, phase, result));
      if (run.pendingRollback) throw new RollbackRequested();
    });
  } catch (err) {
    // The host is lost: whatever else of the attempt still waits for it is given up (./hosts moves the run).
    if (isHostLost(err)) run.phaseScope.cancel();
    if (!(run.pendingRollback && (isCancellation(err) || err instanceof RollbackRequested))) throw err;
  } finally {
    run.phaseScope = undefined;
  }
  const completedAt = new Date().toISOString();
  result.completedAt = completedAt;
  result.duration_ms = Date.parse(completedAt) - Date.parse(result.startedAt);
  if (run.pendingRollback) {
    result.status = 'rolled_back';
    return false;
  }
  if (outcome.kind === 'failed') {
    result.status = 'failed';
    audit.record('phase', { event: 'failed', phase: phase.name, attempt, errors: result.errors });
    await run.failRun(`phase "${phase.name}" failed: ${result.errors.join('; ')}`, 'PhaseFailed', {
      phase: phase.name,
      errors: result.errors,
      checkpoints: st.checkpoints.map((c) => c.id),
    });
  }
  if (outcome.kind === 'retry') {
    result.status = 'failed';
    audit.record('phase', { event: 'retry', phase: phase.name, attempt, gates: outcome.gates });
    log.warn('phase gates failed: retrying the phase', { runId, phase: phase.name, gates: outcome.gates });
    await audit.flush();
    return false;
  }
  if (outcome.kind === 'rollback') {
    result.status = 'rolled_back';
    log.warn('phase gates failed: rolling back', { runId, phase: phase.name, gates: outcome.gates });
    await gateRollback(run, index, phase, outcome.gates, startCommit);
    if (!patched(ROLLBACK_AUDIT_PATCH)) await audit.flush();
    return false;
  }
  result.status = 'completed';
  log.info('phase completed', { runId, phase: phase.name, checkpoint: result.checkpoint });
  audit.record('phase', { event: 'completed', phase: phase.name, attempt, checkpoint: result.checkpoint });
  // A later visit of this phase (after a rollback) gets its gate retries afresh.
  for (const k of Object.keys(st.gateRetries)) if (k.startsWith(`${index}:`)) delete st.gateRetries[k];
  st.nextPhase += 1;
  // The checkpoint wrote what was pending; these last entries go with the next write (./phase).
  if (!patched(CHECKPOINT_AUDIT_PATCH)) await audit.flush();
  return true;
}

/** A run ending by cancellation or by an error no decision turned into a failure: status, manifest and
 * audit say so too. A continue-as-new is not an end. */
async function recordEnd(run: ProjectRun, err: unknown): Promise<void> {
  if (isCancellation(err)) {
    run.state = 'cancelled';
    run.publish();
    run.audit.record('run', { event: 'cancelled' });
    if (patched(TRUTHFUL_END_PATCH)) await run.writeFinalManifest();
    await run.audit.flush();
  } else if (!(err instanceof ContinueAsNew) && run.state !== 'failed' && patched(TRUTHFUL_END_PATCH)) {
    // Failed through an error no decision turned into failRun (an activity that gave up, a bug): the
    // run fails on the server, so status, manifest and audit say `failed` too.
    run.state = 'failed';
    run.publish();
    const message = failureMessage(err);
    log.error('run failed', { runId: run.runId, message });
    run.audit.record('run', {
      event: 'failed',
      type: (err as { type?: string }).type ?? 'Error',
      message,
    });
    await run.writeFinalManifest();
    await run.audit.flush();
  }
}
