/**
 * Continue-as-new: every PHASES_PER_RUN phases (or earlier when Temporal suggests it) the run goes on in a
 * fresh execution with a bounded carry (./carry), so that its history stays small however long it runs.
 */
import { allHandlersFinished, condition, continueAsNew, patched, workflowInfo } from '@temporalio/workflow';
import { compactSpec, type ProjectWorkflowInput } from '../../src/shared/spec';
import { isCarriedRow, packCarry, packRunLengthCarry, type ProjectCarry, resultsFile } from './carry';
import { workspace } from './proxies';
import type { ProjectRun, ProjectSummary } from './run';

/** projectWorkflow's signature (not imported: the entry imports this module). */
type ProjectWorkflowType = (input: ProjectWorkflowInput, carry?: ProjectCarry) => Promise<ProjectSummary>;

/** Continue-as-new after this many phases in one run, or earlier when Temporal suggests it. */
export const PHASES_PER_RUN = 10;

/** Guards the bounded continue-as-new carry (and the results file written before it). */
export const BOUNDED_CARRY_PATCH = 'bounded-carry';
/** Guards the run-length carry: phase rows and checkpoints as runs, commits left to the manifests. */
export const RUN_LENGTH_CARRY_PATCH = 'run-length-carry';

/** Whether to continue-as-new now: phases remain and this execution ran enough of them (or was told to). */
export function dueForContinueAsNew(
  nextPhase: number,
  phaseCount: number,
  phasesThisRun: number,
  suggested: boolean,
): boolean {
  return nextPhase < phaseCount && (phasesThisRun >= PHASES_PER_RUN || suggested);
}

/**
 * Continues as new when due: waits for the handlers to finish, then (unless a rollback came in meanwhile,
 * which this execution serves first) writes this execution's results file and throws ContinueAsNew.
 * Returns when the run goes on in this execution.
 */
export async function continueIfDue(run: ProjectRun, phasesThisRun: number): Promise<void> {
  const { st, input, audit, runId, phases } = run;
  if (
    !dueForContinueAsNew(st.nextPhase, phases.length, phasesThisRun, workflowInfo().continueAsNewSuggested)
  ) {
    return;
  }
  await condition(allHandlersFinished);
  if (run.pendingRollback) return;
  audit.record('run', { event: 'continued_as_new', nextPhase: phases[st.nextPhase]?.name });
  await audit.flush();
  if (patched(BOUNDED_CARRY_PATCH)) {
    // The full results of this execution go to a file; the next one carries a row per phase.
    await workspace.writeOutput({
      outputsDir: input.outputsDir,
      runId,
      relPath: resultsFile(st.continuedAsNew),
      content: JSON.stringify(st.phaseResults.filter((r) => !isCarriedRow(r))),
    });
    st.continuedAsNew += 1;
    // The run-length carry does not grow with the phases (./carry-runs); histories recorded before it
    // carry a row per phase.
    const carry = patched(RUN_LENGTH_CARRY_PATCH)
      ? packRunLengthCarry(
          st,
          { ledger: st.ledger, audit: audit.carry() },
          runId,
          phases.map((p) => p.name),
        )
      : packCarry(st, { ledger: st.ledger, audit: audit.carry() }, runId);
    await continueAsNew<ProjectWorkflowType>({ ...input, spec: compactSpec(run.spec) }, carry);
  }
  st.continuedAsNew += 1;
  await continueAsNew<ProjectWorkflowType>(input, { ...st, audit: audit.carry() });
}
