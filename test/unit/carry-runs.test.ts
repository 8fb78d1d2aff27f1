/**
 * The carry's run-length forms (workflows/project/carry-runs): they round-trip exactly, and their size does not
 * grow with the number of phases, only with what rollbacks leave visible.
 */
import { describe, expect, it } from 'vitest';
import {
  compactAttempts,
  dropFinishedCharges,
  decodeCheckpointRuns,
  decodePhaseRuns,
  encodeCheckpoints,
  encodePhaseRows,
  nextAttempt,
  type PhaseRowTuple,
} from '../../workflows/project/carry-runs';

const linear = (n: number): PhaseRowTuple[] =>
  Array.from({ length: n }, (_, i): PhaseRowTuple => [i, 1, 'completed', `CP${i + 1}`]);

describe('phase rows as runs', () => {
  it('a linear run of any length is one run, and decodes to the same rows', () => {
    for (const n of [1, 10, 1000]) {
      const runs = encodePhaseRows(linear(n));
      expect(runs).toEqual([[0, n, 1, 'completed', 1]]);
      expect(decodePhaseRuns(runs)).toEqual(linear(n));
    }
  });

  it('rollbacks, retries, missing and odd checkpoints split runs; the rows round-trip', () => {
    const rows: PhaseRowTuple[] = [
      [0, 1, 'completed', 'CP1'],
      [1, 1, 'completed', 'CP2'],
      // Rolled back to CP2, phase 2 ran again: its checkpoint is CP6.
      [2, 2, 'completed', 'CP6'],
      [3, 2, 'completed', 'CP7'],
      [4, 1, 'rolled_back', 'CP5'],
      [5, 1, 'completed', null],
      [6, 1, 'completed', null],
      [7, 1, 'completed', 'odd'],
      [8, 1, 'completed', 'CP9'],
    ];
    const runs = encodePhaseRows([...rows].reverse());
    expect(runs).toEqual([
      [0, 2, 1, 'completed', 1],
      [2, 2, 2, 'completed', 6],
      [4, 1, 1, 'rolled_back', 5],
      [5, 2, 1, 'completed', null],
      [7, 1, 1, 'completed', 'odd'],
      [8, 1, 1, 'completed', 9],
    ]);
    expect(decodePhaseRuns(runs)).toEqual(rows);
  });

  it('a gap in phase indexes starts a new run', () => {
    const rows: PhaseRowTuple[] = [
      [0, 1, 'completed', 'CP1'],
      [2, 1, 'completed', 'CP2'],
    ];
    expect(decodePhaseRuns(encodePhaseRows(rows))).toEqual(rows);
    expect(encodePhaseRows(rows)).toHaveLength(2);
  });
});

describe('live checkpoints as runs', () => {
  it('consecutive ids at consecutive phases are one run; others split; order is kept', () => {
    const cps = [...Array.from({ length: 1000 }, (_, i) => ({ id: `CP${i + 1}`, phaseIndex: i }))];
    expect(encodeCheckpoints(cps)).toEqual([[1, 0, 1000]]);
    const mixed = [
      { id: 'CP1', phaseIndex: 0 },
      { id: 'CP2', phaseIndex: 1 },
      { id: 'CP7', phaseIndex: 2 },
      { id: 'CP8', phaseIndex: 3 },
      { id: 'fork', phaseIndex: 4 },
      { id: 'CP10', phaseIndex: 6 },
    ];
    const runs = encodeCheckpoints(mixed);
    expect(runs).toEqual([
      [1, 0, 2],
      [7, 2, 2],
      ['fork', 4, 1],
      [10, 6, 1],
    ]);
    expect(decodeCheckpointRuns(runs)).toEqual(mixed);
  });
});

describe('agent attempt counters', () => {
  const phaseOf = (key: string) => Number(key.split('/')[0]!.slice(1));

  it('drops finished phases, remembers their maximum, and never reuses a number', () => {
    const start = { attempts: { 'p0/a': 1, 'p1/a': 3, 'p2/a': 1 }, floor: 0, droppedBelow: 0 };
    const c = compactAttempts(start, 2, phaseOf);
    expect(c).toEqual({ attempts: { 'p2/a': 1 }, floor: 3, droppedBelow: 2 });
    // Phase 1 visited again after a rollback: after every dropped number, so p1/a#4 at least.
    expect(nextAttempt(c, 'p1/a', 1)).toBe(4);
    expect(nextAttempt(c, 'p0/b', 0)).toBe(4);
    // Kept counters and new phases count on as before.
    expect(nextAttempt(c, 'p2/a', 2)).toBe(2);
    expect(nextAttempt(c, 'p5/a', 5)).toBe(1);
    // A later compaction keeps the highest floor and boundary.
    const later = compactAttempts({ ...c, attempts: { ...c.attempts, 'p1/a': 4 } }, 2, phaseOf);
    expect(later).toEqual({ attempts: { 'p2/a': 1 }, floor: 4, droppedBelow: 2 });
  });

  it('a carry without dropped counters behaves as before', () => {
    const c = { attempts: { 'p0/a': 2 }, floor: 0, droppedBelow: 0 };
    expect(nextAttempt(c, 'p0/a', 0)).toBe(3);
    expect(nextAttempt(c, 'p0/b', 0)).toBe(1);
  });
});

describe('ledger idempotency keys', () => {
  it('drops the keys of finished phases only', () => {
    const ledger = {
      version: 1 as const,
      charged: { 'r/a/x#1': true, 'r/b/x#2': true, 'r/c/x#1': true, 'other#1': true } as Record<string, true>,
    };
    const index: Record<string, number> = { a: 0, b: 1, c: 2 };
    const out = dropFinishedCharges(ledger, 'r', 2, (p) => index[p]);
    expect(Object.keys(out.charged).sort()).toEqual(['other#1', 'r/c/x#1']);
    expect(out.version).toBe(1);
    expect(Object.keys(ledger.charged)).toHaveLength(4);
  });
});
