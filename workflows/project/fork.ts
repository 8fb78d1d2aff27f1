/**
 * A run's first steps: the `started` record, the waived gates, the workspace; and for a fork (a run
 * started from another run's checkpoint) the checkpoint materialized into the new workspace and re-taken
 * in the fork's own shadow repository under the same id, so that it can roll back to it like any
 * checkpoint of its own. Phases up to that checkpoint are `inherited`.
 */
import { ApplicationFailure, log, patched } from '@temporalio/workflow';
import { isHostLost } from '../host-lost';
import { hosts } from '../host-placement';
import { type PhaseResult, ZERO_USAGE } from '../../src/shared/run';
import { BASELINE_PHASE, baselineCheckpoint } from './carry';
import { claimRunHost } from './hosts';
import { onHost } from './proxies';
import { failureMessage, type ProjectRun } from './run';

/** Guards CP0, the checkpoint of the workspace before phase 1 (runs recorded before it took none). */
export const BASELINE_PATCH = 'baseline-cp0';

/**
 * Patch id: a run whose host is lost while it sets its workspace up (before CP0, or before a fork's
 * checkpoint is re-taken) claims another host and sets up there, as if placed there first; runs recorded
 * before it failed. Asked only on that path, so a history that never lost its host has no marker.
 */
export const SETUP_RECLAIM_PATCH = 'run-setup-reclaim';

/**
 * Patch id: a fork whose setup lost its host (its parent's host, where the parent's workspace is) is set up
 * on a live host from the checkpoint store: `adoptWorkspace` with the parent as source restores the forked
 * checkpoint there, and no `materializeCheckpoint` follows. Before it, the fork claimed another host and
 * materialized from a parent workspace that host does not have, and failed. Asked only on that path.
 */
export const FORK_FROM_STORE_PATCH = 'fork-from-store';

/**
 * Patch id: a new run claims its host by a local activity (in its first workflow task, no round trip
 * through the server), and a new run that is not a fork sets its workspace up inside its CP0 call
 * (`checkpointPhase` with `init`) instead of an `initWorkspace` call of its own before it: from the run's
 * start to its first agent, two workflow tasks and two activities less (issue #16). Histories recorded
 * before made the three calls (and asked {@link BASELINE_PATCH} between the last two).
 */
export const QUICK_SETUP_PATCH = 'quick-run-setup';

/** How many times a run's setup claims another host before the run fails (each waits the move time). */
export const SETUP_CLAIMS_MAX = 3;

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

/**
 * Starts a new run (not a continuation): records it, prepares the workspace, takes over a fork's past.
 * `quick`: {@link QUICK_SETUP_PATCH}, asked by the workflow's entry.
 */
export async function startRun(run: ProjectRun, hosted = false, quick = false): Promise<void> {
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
  if (hosted) await claimRunHost(run, quick);
  // Once a fork's checkpoint came from the store, the parent's workspace is out of reach for good.
  let fromStore = false;
  for (let claims = 1; ; claims++) {
    try {
      await setUpWorkspace(run, fromStore, quick && !input.forkedFrom);
      return;
    } catch (err) {
      // Nothing of the run is on the lost host yet but its empty setup: set it up on a live host instead.
      if (!st.host || !isHostLost(err) || claims > SETUP_CLAIMS_MAX || !patched(SETUP_RECLAIM_PATCH))
        throw err;
      const from = st.host;
      const fork = input.forkedFrom;
      // A fork placed where its parent's workspace is: only the store still has the checkpoint.
      if (fork?.host && patched(FORK_FROM_STORE_PATCH)) {
        st.host = await hosts.adoptWorkspace({
          runId,
          workspace: input.workspace,
          checkpoint: fork.checkpoint,
          commit: fork.commit,
          from: from.hostId,
          sourceRunId: fork.runId,
        });
        fromStore = true;
      } else {
        st.host = await hosts.claimHost();
      }
      st.phaseResults.length = 0;
      st.baseline = undefined;
      log.warn('host lost during setup: setting the run up on another host', {
        runId,
        from: from.hostId,
        to: st.host.hostId,
        ...(fromStore ? { fromStore } : {}),
      });
      audit.record('host', {
        event: 'moved',
        from: from.hostId,
        to: st.host.hostId,
        during: 'setup',
        ...(fromStore && fork
          ? { fromStore: { runId: fork.runId, checkpoint: fork.checkpoint, commit: fork.commit } }
          : {}),
        reason: failureMessage(err).slice(0, 500),
      });
    }
  }
}

/**
 * The workspace on the run's host: a fork's checkpoint materialized (unless `fromStore`: restored from the
 * checkpoint store by `adoptWorkspace` already), the shadow repository, CP0.
 */
async function setUpWorkspace(run: ProjectRun, fromStore: boolean, setupInBaseline: boolean): Promise<void> {
  const { runId, input, phases, st, audit } = run;
  const { workspace, checkpointing } = onHost(st.host);
  const fork = input.forkedFrom;
  // A new run: the workspace is set up by its CP0 call, which nothing else may precede.
  if (!fork && setupInBaseline) return takeBaseline(run, { holder: runId });
  if (fork && !fromStore) {
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
 * a fork can go back to it byte for byte. With `init`, the same call sets the workspace up first.
 */
async function takeBaseline(run: ProjectRun, init?: { holder: string }): Promise<void> {
  const { runId, input, st, audit } = run;
  const cp = await onHost(st.host).checkpointing.checkpointPhase({
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    runId,
    phase: BASELINE_PHASE,
    checkpoint: 'CP0',
    label: 'baseline',
    artifacts: [],
    ...(init ? { init } : {}),
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
