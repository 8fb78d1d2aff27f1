/**
 * The parts of the continue-as-new carry that used to take a row per phase, in a form whose size does
 * not depend on how many phases have run:
 *
 * - phase rows become runs of consecutive phases whose latest attempt has the same number and status and
 *   whose checkpoints are numbered consecutively (a 1,000-phase run without rollbacks is one run);
 * - live checkpoints become runs of consecutive ids at consecutive phases. Their commits are not carried:
 *   each checkpoint's own manifest (`outputs/<run>/<phase>/manifest-<id>.json`) holds it, and whoever
 *   needs it (a rollback, a fork, the run manifest) reads it from there;
 * - agent attempt counters of finished phases are dropped and replaced by their maximum: a phase visited
 *   again after a rollback numbers its reservations after that maximum, so a key is never used twice.
 *
 * Rollbacks split runs, so the carry grows with the rollbacks the live state still shows, never with
 * the phases. Deterministic code.
 */
import type { PhaseStatus } from '../../src/shared/run';

/** `[phaseIndex, attempt, status, checkpoint | null]`: the latest attempt of one phase (as in ./carry). */
export type PhaseRowTuple = [number, number, PhaseStatus, string | null];

/**
 * `[firstIndex, count, attempt, status, checkpoint]`: `count` consecutive phases from `firstIndex`, each
 * with this attempt and status. `checkpoint` is a number `n` for checkpoints `CP<n>`, `CP<n+1>`, …; a
 * string for one literal id (then `count` is 1); null for none.
 */
export type PhaseRun = [number, number, number, PhaseStatus, number | string | null];

/** `[first, firstPhaseIndex, count]`: checkpoints `CP<first>`… at phases `firstPhaseIndex`…; a string
 * `first` is one literal id (count 1). */
export type CheckpointRun = [number | string, number, number];

const CP = /^CP([1-9]\d*)$/;

function cpNumber(id: string | null): number | undefined {
  const m = id === null ? null : CP.exec(id);
  return m ? Number(m[1]) : undefined;
}

/** Encodes phase rows (any order) as runs, by phase index. */
export function encodePhaseRows(rows: readonly PhaseRowTuple[]): PhaseRun[] {
  const out: PhaseRun[] = [];
  for (const [index, attempt, status, checkpoint] of [...rows].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    const n = cpNumber(checkpoint);
    if (last && last[2] === attempt && last[3] === status) {
      const [first, count, , , cp] = last;
      const fits =
        (cp === null && checkpoint === null) ||
        (typeof cp === 'number' && n !== undefined && n === cp + count);
      if (fits && index === first + count) {
        last[1] += 1;
        continue;
      }
    }
    out.push([index, 1, attempt, status, checkpoint === null ? null : (n ?? checkpoint)]);
  }
  return out;
}

/** The rows {@link encodePhaseRows} encoded, by phase index. */
export function decodePhaseRuns(runs: readonly PhaseRun[]): PhaseRowTuple[] {
  const out: PhaseRowTuple[] = [];
  for (const [first, count, attempt, status, cp] of runs) {
    for (let k = 0; k < count; k++) {
      const checkpoint = cp === null ? null : typeof cp === 'number' ? `CP${cp + k}` : cp;
      out.push([first + k, attempt, status, checkpoint]);
    }
  }
  return out;
}

/** Encodes live checkpoints (in their order) as runs; their commits are left to the manifests. */
export function encodeCheckpoints(cps: readonly { id: string; phaseIndex: number }[]): CheckpointRun[] {
  const out: CheckpointRun[] = [];
  for (const { id, phaseIndex } of cps) {
    const last = out.at(-1);
    const n = cpNumber(id);
    if (
      last &&
      typeof last[0] === 'number' &&
      n !== undefined &&
      n === last[0] + last[2] &&
      phaseIndex === last[1] + last[2]
    ) {
      last[2] += 1;
      continue;
    }
    out.push([n ?? id, phaseIndex, 1]);
  }
  return out;
}

/** The `{ id, phaseIndex }` of every checkpoint {@link encodeCheckpoints} encoded, in order. */
export function decodeCheckpointRuns(runs: readonly CheckpointRun[]): { id: string; phaseIndex: number }[] {
  const out: { id: string; phaseIndex: number }[] = [];
  for (const [first, phaseIndex, count] of runs) {
    for (let k = 0; k < count; k++) {
      out.push({ id: typeof first === 'number' ? `CP${first + k}` : first, phaseIndex: phaseIndex + k });
    }
  }
  return out;
}

/** Agent attempt counters as carried: those of unfinished phases, and the maximum of the dropped ones. */
export interface CarriedAttempts {
  attempts: Record<string, number>;
  /** The highest counter dropped so far (0: none). */
  floor: number;
  /** Counters of phases below this index were dropped (0: none). */
  droppedBelow: number;
}

/**
 * Drops the counters of phases below `nextPhase` (`phaseOf` maps a counter's key to its phase index;
 * keys it does not know are kept), raising the floor to the highest one dropped.
 */
export function compactAttempts(
  prev: CarriedAttempts,
  nextPhase: number,
  phaseOf: (key: string) => number | undefined,
): CarriedAttempts {
  const attempts: Record<string, number> = {};
  let floor = prev.floor;
  for (const [key, n] of Object.entries(prev.attempts)) {
    const index = phaseOf(key);
    if (index !== undefined && index < nextPhase) floor = Math.max(floor, n);
    else attempts[key] = n;
  }
  return { attempts, floor, droppedBelow: Math.max(prev.droppedBelow, nextPhase) };
}

/**
 * The number of the next reservation of the agent `key` in phase `phaseIndex`: after its own counter,
 * or, when that counter was dropped, after every dropped one.
 */
export function nextAttempt(carried: CarriedAttempts, key: string, phaseIndex: number): number {
  const own = carried.attempts[key];
  if (own !== undefined) return own + 1;
  return (phaseIndex < carried.droppedBelow ? carried.floor : 0) + 1;
}

/**
 * Drops the ledger's idempotency keys (`<runId>/<phase>/<agent>#<n>`) of phases below `nextPhase`: their
 * agents have ended and been charged, and a later visit of such a phase charges under new keys
 * ({@link nextAttempt}). Spend, limits and open reservations are kept as they are.
 */
export function dropFinishedCharges<L extends { charged: Record<string, true> }>(
  ledger: L,
  runId: string,
  nextPhase: number,
  phaseIndexOf: (phase: string) => number | undefined,
): L {
  const prefix = `${runId}/`;
  const charged: Record<string, true> = {};
  for (const key of Object.keys(ledger.charged)) {
    const phase = key.startsWith(prefix) ? key.slice(prefix.length).split('/', 1)[0] : undefined;
    const index = phase === undefined ? undefined : phaseIndexOf(phase);
    if (index === undefined || index >= nextPhase) charged[key] = true;
  }
  return { ...ledger, charged };
}
