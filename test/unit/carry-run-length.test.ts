/**
 * The run-length carry (workflows/project/carry: packRunLengthCarry) does not grow with the phases: a
 * 1,000-phase state packs to the same size as a 10-phase one, and unpacks to the same phase rows and
 * live checkpoints (without commits, which the checkpoint manifests hold). Server-free.
 */
import { describe, expect, it } from 'vitest';
import { type CarriedState, packCarry, packRunLengthCarry, unpackCarry } from '../../workflows/project/carry';
import { reservationKey } from '../../workflows/project/agents';
import { createLedger, type Ledger } from '../../src/shared/budget';
import type { Checkpoint, PhaseResult } from '../../src/shared/run';
import { ZERO_USAGE } from '../../src/shared/run';

const names = (n: number) => Array.from({ length: n }, (_, i) => `p${String(i).padStart(4, '0')}`);

function state(phases: number): CarriedState {
  const phaseResults: PhaseResult[] = [];
  const checkpoints: Checkpoint[] = [];
  const phaseNames = names(phases);
  for (let i = 0; i < phases; i++) {
    phaseResults.push({
      phase: phaseNames[i]!,
      index: i,
      attempt: 1,
      status: 'completed',
      startedAt: '2026-11-30T12:00:00.000Z',
      usage: { ...ZERO_USAGE },
      costUsd: 0,
      errors: [],
      agents: [],
      checkpoint: `CP${i + 1}`,
    });
    checkpoints.push({
      id: `CP${i + 1}`,
      label: `post-${phaseNames[i]}`,
      phase: phaseNames[i]!,
      phaseIndex: i,
      commit: 'c'.repeat(40),
      manifestPath: '',
      createdAt: '2026-11-30T12:00:01.000Z',
      runId: 'run-1',
    });
  }
  return {
    nextPhase: phases,
    phaseResults,
    checkpoints,
    cpCounter: phases,
    rollbacks: [],
    continuedAsNew: Math.floor(phases / 10),
    agentAttempts: Object.fromEntries(phaseNames.map((p) => [`run-1/${p}/dev`, 1])),
    gateRetries: {},
    spent: { usage: { ...ZERO_USAGE }, costUsd: 0 },
    rollbacksDropped: 0,
  };
}

function ledger(phases: number): Ledger {
  const l = createLedger({});
  return { ...l, charged: Object.fromEntries(names(phases).map((p) => [`run-1/${p}/dev#1`, true])) };
}

const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

describe('run-length carry', () => {
  it('is the same size after 10 and after 1,000 phases (the row-per-phase carry is not)', () => {
    const small = packRunLengthCarry(state(10), { ledger: ledger(10) }, 'run-1', names(10));
    const big = packRunLengthCarry(state(1000), { ledger: ledger(1000) }, 'run-1', names(1000));
    // Only the digits of the counters differ.
    expect(size(big) - size(small)).toBeLessThan(20);
    expect(size(big)).toBeLessThan(1024);
    const old = packCarry(state(1000), { ledger: ledger(1000) }, 'run-1');
    expect(size(old)).toBeGreaterThan(50 * size(big));
    expect(big.phaseRuns).toEqual([[0, 1000, 1, 'completed', 1]]);
    expect(big.checkpointRuns).toEqual([[1, 0, 1000]]);
    expect(big.agentAttempts).toEqual({});
    expect(big.attemptFloor).toBe(1);
    expect(big.ledger?.charged).toEqual({});
  });

  it('unpacks to the same rows and live checkpoints, commits left to the manifests', () => {
    const st = state(25);
    st.checkpoints[20]!.rolledBack = true;
    const ctx = { runId: 'run-1', outputsDir: '/out', phaseNames: names(25) };
    const back = unpackCarry(packRunLengthCarry(st, { ledger: ledger(25) }, 'run-1', names(25)), ctx);
    const viaRows = unpackCarry(packCarry(st, { ledger: ledger(25) }, 'run-1'), ctx);
    expect(back.phaseResults).toEqual(viaRows.phaseResults);
    expect(back.checkpoints).toEqual(viaRows.checkpoints.map((c) => ({ ...c, commit: '', createdAt: '' })));
    expect(back.checkpoints.map((c) => c.id)).not.toContain('CP21');
    expect(back.checkpoints[0]!.manifestPath).toBe('/out/run-1/p0000/manifest-CP1.json');
  });

  it('a phase visited again after continue-as-new gets a reservation key it never had', () => {
    const st = state(12);
    st.agentAttempts['run-1/p0003/dev'] = 3;
    st.nextPhase = 10;
    const ctx = { runId: 'run-1', outputsDir: '/out', phaseNames: names(12) };
    const back = unpackCarry(packRunLengthCarry(st, { ledger: ledger(12) }, 'run-1', names(12)), ctx);
    const dropped = { floor: back.attemptFloor, droppedBelow: back.attemptsDroppedBelow };
    expect(reservationKey('run-1/p0003/dev', back.agentAttempts, { ...dropped, phaseIndex: 3 }).key).toBe(
      'run-1/p0003/dev#4',
    );
    expect(reservationKey('run-1/p0005/dev', back.agentAttempts, { ...dropped, phaseIndex: 5 }).n).toBe(4);
    // Phases not finished keep their own counters.
    expect(reservationKey('run-1/p0011/dev', back.agentAttempts, { ...dropped, phaseIndex: 11 }).n).toBe(2);
  });
});
