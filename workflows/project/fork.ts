/**
 * A run's first steps: the `started` record, the waived gates, the workspace; and for a fork (a run
 * started from another run's checkpoint) the checkpoint materialized into the new workspace and re-taken
 * in the fork's own shadow repository under the same id, so that it can roll back to it like any
 * checkpoint of its own. Phases up to that checkpoint are `inherited`.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { type PhaseResult, ZERO_USAGE } from '../../src/shared/run';
import { checkpointing, workspace } from './proxies';
import type { ProjectRun } from './run';

/** The `inherited` results of phases 0..`upTo` of a fork, at time `now`. */
export function inheritedResults(phaseNames: readonly string[], upTo: number, now: string): PhaseResult[] {
  const rows: PhaseResult[] = [];
  for (let i = 0; i <= upTo; i++) {
    rows.push({
      phase: phaseNames[i]!,
      index: i,
      attempt: 1,
      status: 'inherited',
      startedAt: now,
      completedAt: now,
      duration_ms: 0,
      usage: { ...ZERO_USAGE },
      costUsd: 0,
      errors: [],
      agents: [],
    });
  }
  return rows;
}

/** The checkpoint counter a fork continues from: the number of `CP<n>`. */
export function checkpointNumber(id: string): number {
  return Number(id.slice(2));
}

/** Starts a new run (not a continuation): records it, prepares the workspace, takes over a fork's past. */
export async function startRun(run: ProjectRun): Promise<void> {
  const { runId, input, spec, phases, st, audit } = run;
  audit.record('run', {
    event: 'started',
    project: spec.project.name,
    client: spec.project.client,
    phases: phases.map((p) => p.name),
    onBudgetExceeded: run.onExceeded,
    ...(input.forkedFrom
      ? { forkedFrom: { runId: input.forkedFrom.runId, checkpoint: input.forkedFrom.checkpoint } }
      : {}),
  });
  // Gates switched off by the client's policy or the intake (never mandatory ones: those are refused
  // before a run starts) are on record from the first entries.
  for (const w of spec.governance?.waived ?? []) {
    audit.record('governance', { event: 'gate_disabled', phase: w.phase, gate: w.gate, by: w.by });
  }
  const fork = input.forkedFrom;
  if (fork) {
    await workspace.materializeCheckpoint({
      sourceWorkspace: fork.sourceWorkspace,
      commit: fork.commit,
      targetWorkspace: input.workspace,
    });
  }
  await workspace.initWorkspace({ workspace: input.workspace, holder: runId });
  if (!fork) return;
  const forkedPhase = phases[fork.phaseIndex];
  if (!forkedPhase)
    throw ApplicationFailure.nonRetryable(
      `fork: the intake has no phase ${fork.phaseIndex + 1}`,
      'InvalidFork',
    );
  const now = new Date().toISOString();
  st.phaseResults.push(
    ...inheritedResults(
      phases.map((p) => p.name),
      fork.phaseIndex,
      now,
    ),
  );
  const cp = await checkpointing.checkpointPhase({
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    runId,
    phase: forkedPhase.name,
    checkpoint: fork.checkpoint,
    label: `post-${forkedPhase.name}`,
    artifacts: forkedPhase.artifacts,
  });
  if (!cp.ok || !cp.commit) {
    throw ApplicationFailure.nonRetryable(
      `fork: ${fork.checkpoint} does not validate: ${cp.errors.join('; ')}`,
      'InvalidFork',
    );
  }
  st.cpCounter = checkpointNumber(fork.checkpoint);
  st.checkpoints.push({
    id: fork.checkpoint,
    label: `post-${forkedPhase.name}`,
    phase: forkedPhase.name,
    phaseIndex: fork.phaseIndex,
    commit: cp.commit,
    manifestPath: cp.manifestPath ?? '',
    createdAt: now,
    runId,
  });
  st.phaseResults[fork.phaseIndex]!.checkpoint = fork.checkpoint;
  audit.record('checkpoint', {
    id: fork.checkpoint,
    phase: forkedPhase.name,
    commit: cp.commit,
    inherited: true,
  });
  st.nextPhase = fork.phaseIndex + 1;
}
