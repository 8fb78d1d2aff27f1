/**
 * What `projectWorkflow` carries across continue-as-new, kept bounded: summaries and references, never
 * the history. Phase results are carried as one short row per phase (its latest attempt), checkpoints as
 * the live ones only (id, phase index, commit, time), rollbacks as the most recent few, totals as sums.
 * Everything else (agent results, errors, artifacts, rolled-back checkpoints) is in files: each
 * execution's full phase results under `outputs/<run>/results/`, manifests, the audit trail.
 *
 * The carry grows with the number of phases in the intake (one row and at most one live checkpoint
 * each), never with the number of executions, attempts, rollbacks or agents' output. Deterministic code.
 */
import type { HostPlacement } from '../../activities/host';
import type { Ledger } from '../../src/shared/budget';
import {
  addUsage,
  type Checkpoint,
  type PhaseResult,
  type PhaseStatus,
  type RunStatus,
  type Usage,
  ZERO_USAGE,
} from '../../src/shared/run';
import type { AuditCarry } from '../audit';
import {
  compactAttempts,
  decodeCheckpointRuns,
  decodePhaseRuns,
  dropFinishedCharges,
  encodeCheckpoints,
  encodePhaseRows,
  type CheckpointRun,
  type PhaseRun,
} from './carry-runs';

/** How many rollbacks the status keeps showing after a continue-as-new (all are in the audit trail). */
export const CARRIED_ROLLBACKS = 20;

/** `[phaseIndex, attempt, status, checkpoint | null]`: the latest attempt of one phase. */
export type PhaseRow = [number, number, PhaseStatus, string | null];
/** `[id, phaseIndex, commit, createdAt]`: a live checkpoint. */
export type CheckpointRow = [string, number, string, string];

/** State carried across continue-as-new. The first five fields are the pre-compaction format. */
export interface ProjectCarry {
  nextPhase: number;
  /** Full results: written by executions before the carry was compacted; empty in compact carries. */
  phaseResults: PhaseResult[];
  /** Full checkpoints: written before compaction; empty in compact carries. */
  checkpoints: Checkpoint[];
  cpCounter: number;
  rollbacks: RunStatus['rollbacks'];
  continuedAsNew: number;
  /** Optional only for carries written before budgets existed. */
  ledger?: Ledger;
  audit?: AuditCarry;
  /** Reservations made per agent child workflow id: the next reservation key is `<id>#<n+1>`. In a
   * compact carry the keys lack the `<runId>/` prefix. */
  agentAttempts?: Record<string, number>;
  /** Retries (or gate rollbacks) used per `<phaseIndex>:<gateId>`. */
  gateRetries?: Record<string, number>;
  /** Compact carry: the latest attempt of each phase that has run. */
  phaseRows?: PhaseRow[];
  /** Compact carry: live checkpoints. */
  liveCheckpoints?: CheckpointRow[];
  /** Compact carry: usage and cost of every phase attempt so far (rolled back ones included). */
  spent?: { usage: Usage; costUsd: number };
  /** Compact carry: rollbacks before the carried ones. */
  rollbacksDropped?: number;
  /** Run-length carry (instead of `phaseRows`): the latest attempt of each phase that has run. */
  phaseRuns?: PhaseRun[];
  /** Run-length carry (instead of `liveCheckpoints`): live checkpoints, without commits (their
   * manifests hold them). */
  checkpointRuns?: CheckpointRun[];
  /** Run-length carry: the highest attempt counter dropped from `agentAttempts`. */
  attemptFloor?: number;
  /** Run-length carry: attempt counters of phases below this index were dropped. */
  attemptsDroppedBelow?: number;
  /** CP0, the workspace before phase 1 (`[id, -1, commit, createdAt]`), when the run took one. */
  baselineRow?: CheckpointRow;
  /** The host the run's workspace lives on (./hosts); absent for runs started before hosts existed. */
  host?: HostPlacement;
}

/** The workflow state a carry describes. */
export interface CarriedState {
  nextPhase: number;
  phaseResults: PhaseResult[];
  checkpoints: Checkpoint[];
  cpCounter: number;
  rollbacks: RunStatus['rollbacks'];
  continuedAsNew: number;
  agentAttempts: Record<string, number>;
  gateRetries: Record<string, number>;
  /** Usage and cost of attempts whose full results are in earlier executions' files. */
  spent: { usage: Usage; costUsd: number };
  rollbacksDropped: number;
  /** The highest attempt counter dropped from `agentAttempts` (see ./carry-runs); 0 when none. */
  attemptFloor?: number;
  /** Attempt counters of phases below this index were dropped; 0 when none. */
  attemptsDroppedBelow?: number;
  /** CP0, the workspace before phase 1 (see {@link baselineCheckpoint}). */
  baseline?: Checkpoint;
  /** The host the run's workspace lives on: its workspace steps and agent turns go there (./hosts). */
  host?: HostPlacement;
}

/** The phase name CP0's manifest is filed under (`outputs/<run>/baseline/manifest-CP0.json`). */
export const BASELINE_PHASE = 'baseline';

/** CP0 of a run: the workspace before phase 1, at phase index -1 so a rollback to it re-runs every phase. */
export function baselineCheckpoint(
  ctx: RunContext,
  commit: string,
  createdAt: string,
  manifestPath = checkpointManifestPath(ctx, BASELINE_PHASE, 'CP0'),
): Checkpoint {
  return {
    id: 'CP0',
    label: 'baseline',
    phase: BASELINE_PHASE,
    phaseIndex: -1,
    commit,
    manifestPath,
    createdAt,
    runId: ctx.runId,
  };
}

/** The phase and run a compact checkpoint row expands to. */
export interface RunContext {
  runId: string;
  outputsDir: string;
  phaseNames: readonly string[];
}

/** Where writeManifest puts a checkpoint's manifest (activities/workspace/manifest.ts). */
export function checkpointManifestPath(ctx: RunContext, phase: string, id: string): string {
  return `${ctx.outputsDir.replace(/\/+$/, '')}/${ctx.runId}/${phase}/manifest-${id}.json`;
}

/** A file holding this execution's full phase results, relative to the run's outputs folder. */
export function resultsFile(continuedAsNew: number): string {
  return `results/execution-${continuedAsNew + 1}.json`;
}

/** Builds the bounded carry from the workflow state. */
export function packCarry(
  st: CarriedState,
  extra: { ledger?: Ledger; audit?: AuditCarry },
  runId: string,
): ProjectCarry {
  const latest = new Map<number, PhaseResult>();
  for (const r of st.phaseResults) {
    const seen = latest.get(r.index);
    if (!seen || r.attempt >= seen.attempt) latest.set(r.index, r);
  }
  let spent = st.spent;
  for (const r of st.phaseResults) {
    if (isCarriedRow(r)) continue;
    spent = { usage: addUsage(spent.usage, r.usage), costUsd: spent.costUsd + r.costUsd };
  }
  const prefix = `${runId}/`;
  const keep = st.rollbacks.slice(-CARRIED_ROLLBACKS);
  return {
    nextPhase: st.nextPhase,
    phaseResults: [],
    checkpoints: [],
    cpCounter: st.cpCounter,
    rollbacks: keep,
    rollbacksDropped: st.rollbacksDropped + st.rollbacks.length - keep.length,
    continuedAsNew: st.continuedAsNew,
    ...extra,
    agentAttempts: Object.fromEntries(
      Object.entries(st.agentAttempts).map(([k, v]) => [
        k.startsWith(prefix) ? k.slice(prefix.length) : k,
        v,
      ]),
    ),
    gateRetries: st.gateRetries,
    phaseRows: [...latest.values()]
      .sort((a, b) => a.index - b.index)
      .map((r): PhaseRow => [r.index, r.attempt, r.status, r.checkpoint ?? null]),
    liveCheckpoints: st.checkpoints
      .filter((c) => !c.rolledBack)
      .map((c): CheckpointRow => [c.id, c.phaseIndex, c.commit, c.createdAt]),
    spent: { usage: spent.usage, costUsd: Math.round(spent.costUsd * 1e6) / 1e6 },
    ...(st.baseline
      ? {
          baselineRow: [
            st.baseline.id,
            -1,
            st.baseline.commit,
            st.baseline.createdAt,
          ] satisfies CheckpointRow,
        }
      : {}),
    ...(st.host ? { host: st.host } : {}),
  };
}

/**
 * The run-length carry: {@link packCarry}'s, with phase rows and live checkpoints as runs (./carry-runs),
 * checkpoints without commits, and the attempt counters and ledger keys of finished phases dropped. Its
 * size depends on the rollbacks still visible, not on the number of phases.
 */
export function packRunLengthCarry(
  st: CarriedState,
  extra: { ledger: Ledger; audit?: AuditCarry },
  runId: string,
  phaseNames: readonly string[],
): ProjectCarry {
  const index = new Map(phaseNames.map((name, i) => [name, i]));
  const phaseIndexOf = (phase: string) => index.get(phase);
  // Counters are keyed by the agent's child workflow id, `<runId>/<phase>/<agent>`.
  const prefix = `${runId}/`;
  const attempts = compactAttempts(
    {
      attempts: st.agentAttempts,
      floor: st.attemptFloor ?? 0,
      droppedBelow: st.attemptsDroppedBelow ?? 0,
    },
    st.nextPhase,
    (key) => (key.startsWith(prefix) ? phaseIndexOf(key.slice(prefix.length).split('/', 1)[0]!) : undefined),
  );
  const { phaseRows, liveCheckpoints, ...compact } = packCarry(
    { ...st, agentAttempts: attempts.attempts },
    { ...extra, ledger: dropFinishedCharges(extra.ledger, runId, st.nextPhase, phaseIndexOf) },
    runId,
  );
  return {
    ...compact,
    phaseRuns: encodePhaseRows(phaseRows ?? []),
    checkpointRuns: encodeCheckpoints(
      (liveCheckpoints ?? []).map(([id, phaseIndex]) => ({ id, phaseIndex })),
    ),
    attemptFloor: attempts.floor,
    attemptsDroppedBelow: attempts.droppedBelow,
  };
}

/** Reads a carry (compact or the earlier full format) back into workflow state. */
export function unpackCarry(carry: ProjectCarry | undefined, ctx: RunContext): CarriedState {
  const prefix = `${ctx.runId}/`;
  const attempts = Object.fromEntries(
    Object.entries(carry?.agentAttempts ?? {}).map(([k, v]) => [k.startsWith(prefix) ? k : prefix + k, v]),
  );
  const base = {
    nextPhase: carry?.nextPhase ?? 0,
    cpCounter: carry?.cpCounter ?? 0,
    rollbacks: carry?.rollbacks ?? [],
    continuedAsNew: carry?.continuedAsNew ?? 0,
    agentAttempts: attempts,
    gateRetries: carry?.gateRetries ?? {},
    rollbacksDropped: carry?.rollbacksDropped ?? 0,
    attemptFloor: carry?.attemptFloor ?? 0,
    attemptsDroppedBelow: carry?.attemptsDroppedBelow ?? 0,
    ...(carry?.baselineRow
      ? { baseline: baselineCheckpoint(ctx, carry.baselineRow[2], carry.baselineRow[3]) }
      : {}),
    ...(carry?.host ? { host: carry.host } : {}),
  };
  const phaseRows = carry?.phaseRows ?? (carry?.phaseRuns ? decodePhaseRuns(carry.phaseRuns) : undefined);
  if (!carry || !phaseRows) {
    return {
      ...base,
      // Carries written before artifact lists left history hold them per phase: not carried any further.
      phaseResults: (carry?.phaseResults ?? []).map(({ artifacts: _list, ...r }) => r),
      checkpoints: carry?.checkpoints ?? [],
      spent: { usage: { ...ZERO_USAGE }, costUsd: 0 },
    };
  }
  const phaseName = (i: number) => ctx.phaseNames[i] ?? `phase-${i + 1}`;
  return {
    ...base,
    phaseResults: phaseRows.map(([index, attempt, status, checkpoint]) => ({
      phase: phaseName(index),
      index,
      attempt,
      status,
      startedAt: '',
      usage: { ...ZERO_USAGE },
      costUsd: 0,
      errors: [],
      agents: [],
      // The full results of earlier executions are files in this folder.
      outputRef: `${ctx.outputsDir.replace(/\/+$/, '')}/${ctx.runId}/results/`,
      ...(checkpoint ? { checkpoint } : {}),
    })),
    checkpoints: (
      carry.liveCheckpoints ??
      // Run-length checkpoints come without commit and time: rollback and the CLI read them from the
      // checkpoint's manifest.
      decodeCheckpointRuns(carry.checkpointRuns ?? []).map(({ id, phaseIndex }): CheckpointRow => [
        id,
        phaseIndex,
        '',
        '',
      ])
    ).map(([id, phaseIndex, commit, createdAt]) => ({
      id,
      label: `post-${phaseName(phaseIndex)}`,
      phase: phaseName(phaseIndex),
      phaseIndex,
      commit,
      manifestPath: checkpointManifestPath(ctx, phaseName(phaseIndex), id),
      createdAt,
      runId: ctx.runId,
    })),
    spent: carry.spent ?? { usage: { ...ZERO_USAGE }, costUsd: 0 },
  };
}

/** Whether a result came from a carried row (its usage is counted in `spent`, not in the row): real
 * results always have a start time. */
export function isCarriedRow(r: PhaseResult): boolean {
  return r.startedAt === '';
}
