/**
 * A run's first steps: the `started` record, the waived gates, the workspace; and for a fork (a run
 * started from another run's checkpoint) the checkpoint materialized into the new workspace and re-taken
 * in the fork's own shadow repository under the same id, so that it can roll back to it like any
 * checkpoint of its own. Phases up to that checkpoint are `inherited`.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { type PhaseResult, ZERO_USAGE } from '../../src/shared/run';
import { BASELINE_PHASE, baselineCheckpoint } from './carry';
import { claimRunHost } from './hosts';
import { onHost } from './proxies';
import type { ProjectRun } from './run';

/** Guards CP0, the checkpoint of the workspace before phase 1 (runs recorded before it took none). */
export const BASELINE_PATCH = 'baseline-cp0';

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
export async function startRun(run: ProjectRun, hosted = false): Promise<void> {
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
  // The host the workspace lives on (./hosts): every step below goes there.
  if (hosted) await claimRunHost(run);
  const { workspace, checkpointing } = onHost(run.st.host);
  const fork = input.forkedFrom;
  if (fork) {
    await workspace.materializeCheckpoint({
      sourceWorkspace: fork.sourceWorkspace,
      commit: fork.commit,
      targetWorkspace: input.workspace,
    });
  }
  await workspace.initWorkspace({ workspace: input.workspace, holder: runId });
  // A fork of CP0 starts where a fresh run does: before phase 1, with its own CP0 of the same files.
  if (fork?.phaseIndex === -1 || (!fork && patched(BASELINE_PATCH))) await takeBaseline(run);
  if (!fork || fork.phaseIndex === -1) return;
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

/**
 * CP0: the workspace as the run found it, before phase 1 (no artifacts required), so that a rollback or
 * a fork can go back to it byte for byte.
 */
async function takeBaseline(run: ProjectRun): Promise<void> {
  const { runId, input, st, audit } = run;
  const cp = await onHost(st.host).checkpointing.checkpointPhase({
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    runId,
    phase: BASELINE_PHASE,
    checkpoint: 'CP0',
    label: 'baseline',
    artifacts: [],
  });
  if (!cp.ok || !cp.commit) {
    throw ApplicationFailure.nonRetryable(
      `CP0: the workspace before phase 1 could not be checkpointed: ${cp.errors.join('; ')}`,
      'InvalidPath',
    );
  }
  st.baseline = baselineCheckpoint(
    { runId, outputsDir: input.outputsDir, phaseNames: [] },
    cp.commit,
    new Date().toISOString(),
    cp.manifestPath,
  );
  audit.record('checkpoint', {
    id: 'CP0',
    phase: BASELINE_PHASE,
    commit: cp.commit,
    manifest: cp.manifestPath,
  });
}
