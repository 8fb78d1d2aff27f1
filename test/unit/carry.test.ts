/**
 * The continue-as-new carry is bounded: it grows with the phases of the intake (a short row each), never
 * with executions, attempts, rollbacks or what agents said. Server-free; `npm run bench:long` measures a
 * real 1,000-phase run.
 */
import { describe, expect, it } from 'vitest';
import { type CarriedState, CARRIED_ROLLBACKS, packCarry, unpackCarry } from '../../workflows/project/carry';
import type { Checkpoint, PhaseResult } from '../../src/shared/run';
import { compactSpec, ProjectSpecSchema, ProjectWorkflowInputSchema } from '../../src/shared/spec';

const ctx = {
  runId: 'run-1',
  outputsDir: '/out',
  phaseNames: Array.from({ length: 1000 }, (_, i) => `p${i}`),
};
const usage = {
  input_tokens: 10,
  output_tokens: 5,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

function result(index: number, attempt: number, status: PhaseResult['status']): PhaseResult {
  return {
    phase: `p${index}`,
    index,
    attempt,
    status,
    startedAt: '2026-11-30T12:00:00.000Z',
    completedAt: '2026-11-30T12:00:01.000Z',
    duration_ms: 1000,
    usage,
    costUsd: 0.25,
    artifacts: Array.from({ length: 20 }, (_, i) => ({
      path: `src/f${i}.ts`,
      size: 10,
      sha256: 'a'.repeat(64),
    })),
    errors: status === 'completed' ? [] : ['x'.repeat(4000)],
    agents: [
      {
        agentId: 'dev',
        role: 'dev',
        backend: 'script',
        status: 'completed',
        summary: 's'.repeat(600),
        usage,
        costUsd: 0.25,
        startedAt: '',
        completedAt: '',
      },
    ],
    ...(status === 'completed' ? { checkpoint: `CP${index + 1}` } : {}),
  };
}

function checkpoint(index: number, rolledBack = false): Checkpoint {
  return {
    id: `CP${index + 1}`,
    label: `post-p${index}`,
    phase: `p${index}`,
    phaseIndex: index,
    commit: 'c'.repeat(40),
    manifestPath: `/out/run-1/p${index}/manifest-CP${index + 1}.json`,
    createdAt: '2026-11-30T12:00:01.000Z',
    runId: 'run-1',
    ...(rolledBack ? { rolledBack: true } : {}),
  };
}

/** The state after `phases` completed phases, each having run `attempts` times (rollbacks, retries). */
function state(phases: number, attempts: number): CarriedState {
  const phaseResults: PhaseResult[] = [];
  const checkpoints: Checkpoint[] = [];
  for (let i = 0; i < phases; i++) {
    for (let a = 1; a < attempts; a++) {
      phaseResults.push(result(i, a, 'rolled_back'));
      checkpoints.push(checkpoint(i, true));
    }
    phaseResults.push(result(i, attempts, 'completed'));
    checkpoints.push(checkpoint(i));
  }
  return {
    nextPhase: phases,
    phaseResults,
    checkpoints,
    cpCounter: phases * attempts,
    rollbacks: Array.from({ length: phases * (attempts - 1) }, (_, i) => ({ to: `CP${i}`, at: 'now' })),
    continuedAsNew: 3,
    agentAttempts: Object.fromEntries(
      Array.from({ length: phases }, (_, i) => [`run-1/p${i}/dev`, attempts]),
    ),
    gateRetries: {},
    spent: { usage: { ...usage }, costUsd: 1 },
    rollbacksDropped: 0,
  };
}

const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

describe('continue-as-new carry', () => {
  it('does not grow with attempts, rollbacks or agent output: only with phases', () => {
    const once = size(packCarry(state(50, 1), {}, 'run-1'));
    const tenTimes = size(packCarry(state(50, 10), {}, 'run-1'));
    // The attempt numbers get a digit longer and a few rollbacks are kept: nothing else.
    expect(tenTimes - once).toBeLessThan(50 * 4 + CARRIED_ROLLBACKS * 40);
    // A short row per phase.
    expect(once / 50).toBeLessThan(180);
  });

  it('packs and unpacks to the same status: latest attempts, live checkpoints, totals, reservations', () => {
    const st = state(3, 2);
    const back = unpackCarry(packCarry(st, {}, 'run-1'), ctx);
    expect(back.phaseResults.map((r) => [r.phase, r.attempt, r.status, r.checkpoint])).toEqual([
      ['p0', 2, 'completed', 'CP1'],
      ['p1', 2, 'completed', 'CP2'],
      ['p2', 2, 'completed', 'CP3'],
    ]);
    expect(back.checkpoints).toEqual(st.checkpoints.filter((c) => !c.rolledBack));
    // Every attempt's spend (6 × 0.25) plus what earlier executions had spent (1).
    expect(back.spent.costUsd).toBe(2.5);
    expect(back.spent.usage.input_tokens).toBe(70);
    expect(back.agentAttempts).toEqual(st.agentAttempts);
    expect(back.nextPhase).toBe(3);
    expect(back.cpCounter).toBe(6);
    expect(back.rollbacks.length + back.rollbacksDropped).toBe(3);
    // Packing what was unpacked (the next continue-as-new) changes nothing.
    expect(packCarry(back, {}, 'run-1')).toEqual(packCarry(st, {}, 'run-1'));
  });

  it('reads the earlier, full carry format unchanged', () => {
    const st = state(2, 1);
    const old = { ...st, phaseResults: st.phaseResults, checkpoints: st.checkpoints };
    const back = unpackCarry(old, ctx);
    expect(back.phaseResults).toEqual(st.phaseResults.map(({ artifacts: _a, ...r }) => r));
    expect(back.checkpoints).toEqual(st.checkpoints);
  });

  it('a 1,000-phase run: compact spec plus carry stay far under 256 KB', () => {
    const spec = ProjectSpecSchema.parse({
      project: { name: 'long' },
      phases: ctx.phaseNames.map((name) => ({
        name,
        agents: [{ role: 'noop', backend: 'script', command: ['true'] }],
      })),
    });
    const compact = compactSpec(spec);
    // The workflow parses the compact spec back into the same spec.
    const input = { runId: 'run-1', spec: compact, workspace: '/w', outputsDir: '/out' };
    expect(ProjectWorkflowInputSchema.parse(input).spec).toEqual(spec);
    const carry = packCarry(state(999, 3), {}, 'run-1');
    expect(size(input) + size(carry)).toBeLessThan(256 * 1024);
  });
});
