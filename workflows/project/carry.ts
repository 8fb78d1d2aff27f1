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
  };
  if (!carry?.phaseRows) {
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
    phaseResults: carry.phaseRows.map(([index, attempt, status, checkpoint]) => ({
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
    checkpoints: (carry.liveCheckpoints ?? []).map(([id, phaseIndex, commit, createdAt]) => ({
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
