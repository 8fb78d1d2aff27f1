/**
 * The pure decisions of projectWorkflow (workflows/project/), tested without a server: what a run shows,
 * what an agent is charged, what a budget stop or a failed gate means, which requests are refused, what a
 * rollback marks, when the run continues as new.
 */
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { charge, createLedger } from '../../src/shared/budget';
import type { AgentStatusRow, Checkpoint, PhaseResult } from '../../src/shared/run';
import { ZERO_USAGE } from '../../src/shared/run';
import { reservationKey } from '../../workflows/project/agents';
import { budgetFailureOf, pausedScope, raiseCommand, raiseHint } from '../../workflows/project/budget';
import { dueForContinueAsNew, PHASES_PER_RUN } from '../../workflows/project/continue';
import { checkpointNumber, inheritedResults } from '../../workflows/project/fork';
import { decideGates, type GateResult } from '../../workflows/project/gates';
import {
  artifactTotals,
  needsStartSnapshot,
  newPhaseResult,
  nextAttempt,
  phaseSucceeded,
} from '../../workflows/project/phase';
import { checkApprove, checkRaise, checkRollback } from '../../workflows/project/requests';
import { markRolledBack, previousCheckpoint } from '../../workflows/project/rollback';
import { failureMessage, issuesOf, parseProjectInput } from '../../workflows/project/run';
import { chargeParts, cleanUsage, cleanUsd, failedAgent, reportedSpend } from '../../workflows/project/spend';
import { effectiveState, pausedReason, phaseRows, runTotals } from '../../workflows/project/status';
import { round6 } from '../../src/shared/budget';
import { stepText } from '../../src/shared/visibility';

const usage = (input: number, output = 0) => ({ ...ZERO_USAGE, input_tokens: input, output_tokens: output });

function result(index: number, attempt: number, status: PhaseResult['status'], costUsd = 0): PhaseResult {
  return {
    ...newPhaseResult(`p${index}`, index, attempt, '2026-11-30T00:00:00.000Z'),
    status,
    costUsd,
    usage: usage(costUsd * 1000),
  };
}

function checkpoint(id: string, phaseIndex: number, rolledBack?: boolean): Checkpoint {
  return {
    id,
    label: `post-p${phaseIndex}`,
    phase: `p${phaseIndex}`,
    phaseIndex,
    commit: `c-${id}`,
    manifestPath: '',
    createdAt: '2026-11-30T00:00:00.000Z',
    runId: 'r',
    ...(rolledBack ? { rolledBack } : {}),
  };
}

function gate(id: string, on_fail: string, passed = false, max_retries?: number): GateResult {
  return {
    id,
    kind: 'tool',
    passed,
    on_fail,
    summary: `${id} said no`,
    evidence: { exit: 1 },
    max_retries,
  } as GateResult;
}

describe('status', () => {
  it('shows paused only while something waits in a running run', () => {
    expect(effectiveState('running', 1)).toBe('paused');
    expect(effectiveState('running', 0)).toBe('running');
    expect(effectiveState('rolling_back', 2)).toBe('rolling_back');
  });

  it('gives every waiter as the paused reason, else the last refused request', () => {
    expect(pausedReason(['a', 'b'], [{ reason: 'old' }])).toBe('a; b');
    expect(pausedReason([], [{ reason: 'x' }, { reason: 'y' }])).toBe('last refused request: y');
    expect(pausedReason([], [])).toBeUndefined();
  });

  it('totals every attempt, rolled back ones and earlier executions included', () => {
    const t = runTotals({
      spent: { usage: usage(10), costUsd: 0.1 },
      phaseResults: [result(0, 1, 'rolled_back', 0.2), result(0, 2, 'completed', 0.3)],
    });
    expect(t.costUsd).toBe(0.6);
    expect(t.usage.input_tokens).toBe(10 + 200 + 300);
    expect(t.tokens).toBe(510);
    expect(round6(0.1234564)).toBe(0.123456);
  });

  it('shows the latest attempt per phase, and a rolled-back phase not reached again as pending', () => {
    const rows = phaseRows([{ name: 'p0' }, { name: 'p1' }, { name: 'p2' }], {
      nextPhase: 1,
      phaseResults: [result(0, 1, 'failed'), result(0, 2, 'completed'), result(1, 1, 'rolled_back')],
    });
    expect(rows.map((r) => [r.status, r.attempt])).toEqual([
      ['completed', 2],
      ['pending', 1],
      ['pending', 0],
    ]);
    expect(stepText(3, 3)).toBe('step 3/3');
    expect(stepText(0, 3)).toBe('step 1/3');
  });
});

describe('spend', () => {
  it('finds the spend a child put in its failure, a cause or two deep, cleaned', () => {
    const inner = ApplicationFailure.create({
      message: 'cancelled',
      details: [{ usage: { input_tokens: 12.4, output_tokens: -3 }, costUsd: 0.02 }],
    });
    const outer = new Error('child failed', { cause: inner });
    expect(reportedSpend(outer)).toEqual({
      usage: { ...ZERO_USAGE, input_tokens: 12 },
      costUsd: 0.02,
      models: undefined,
    });
    expect(reportedSpend(new Error('no details'))).toBeUndefined();
  });

  it('charges each model its part and the uncovered rest to the fallback model', () => {
    const parts = chargeParts(
      {
        usage: usage(100, 10),
        costUsd: 0.5,
        models: { haiku: { usage: usage(60, 10), costUsd: 0.2 }, idle: { usage: usage(0), costUsd: 0 } },
      },
      'sonnet',
    );
    expect(parts).toEqual([
      { model: 'haiku', usage: usage(60, 10), costUsd: 0.2 },
      { model: 'sonnet', usage: usage(40), costUsd: 0.3 },
    ]);
    // Float noise below half a micro-dollar is not a charge.
    expect(chargeParts({ usage: usage(0), costUsd: 3e-7 }, 'x')).toEqual([]);
  });

  it('turns bad figures into zero rather than wedging the ledger', () => {
    expect(cleanUsd(Number.NaN)).toBe(0);
    expect(cleanUsd(-1)).toBe(0);
    expect(cleanUsd('1')).toBe(0);
    expect(cleanUsage({ input_tokens: Infinity, output_tokens: 2.6 })).toEqual({
      ...ZERO_USAGE,
      output_tokens: 3,
    });
    const f = failedAgent('a', 'dev', 'cli', 'boom', { usage: usage(5), costUsd: 0.01 });
    expect([f.status, f.error, f.costUsd, f.usage.input_tokens]).toEqual(['failed', 'boom', 0.01, 5]);
  });
});

describe('budget', () => {
  it('names the raise command for the level that ran out', () => {
    expect(raiseCommand('r1', { level: 'agent', phase: 'dev', agent: 'coder' }, 'tokens')).toBe(
      'orchestrator budget set --run r1 --max-tokens <n> --phase dev --agent coder',
    );
    expect(raiseHint('r1', undefined, { phase: 'dev', agent: 'coder' })).toBe(
      'orchestrator budget set --run r1 --max-usd <usd> --phase dev --agent coder',
    );
    expect(pausedScope({ level: 'phase', phase: 'dev', agent: 'coder' })).toEqual({
      level: 'phase',
      phase: 'dev',
    });
    expect(pausedScope({ level: 'run', phase: 'dev', agent: 'coder' })).toEqual({ level: 'run' });
  });

  it('recognises a budget stop by the ledger first, then by failure type, asking for the type only then', () => {
    const where = { phase: 'dev', agent: 'coder' };
    const spent = charge(createLedger({ run: { usd: 1 } }), {
      key: 'k',
      ...where,
      model: 'm',
      usage: usage(1),
      costUsd: 1,
    });
    let asked = 0;
    const byType = () => {
      asked += 1;
      return true;
    };
    expect(budgetFailureOf(spent, where, { error: 'x' }, byType)?.exceeded?.level).toBe('run');
    expect(asked).toBe(0);
    const open = createLedger({ run: { usd: 1 } });
    expect(
      budgetFailureOf(open, where, { error: 'ran out', errorType: 'BudgetExhausted' }, byType)?.reason,
    ).toMatch(/agent "coder" in phase "dev" ran out of budget: ran out/);
    // By type, a message that merely mentions the budget is not a budget stop.
    expect(
      budgetFailureOf(open, where, { error: 'BudgetExhausted', errorType: 'AgentFailed' }, byType),
    ).toBeUndefined();
    // Histories from before failure types matched the text.
    expect(budgetFailureOf(open, where, { error: 'error_max_budget_usd' }, () => false)).toBeDefined();
  });

  it('keys each child start afresh', () => {
    expect(reservationKey('r/dev/coder', {})).toEqual({ key: 'r/dev/coder#1', n: 1 });
    expect(reservationKey('r/dev/coder', { 'r/dev/coder': 2 })).toEqual({ key: 'r/dev/coder#3', n: 3 });
  });
});

describe('gates', () => {
  it('passes when every gate passed', () => {
    expect(decideGates(0, [gate('a', 'fail', true)], {})).toEqual({ action: 'pass' });
  });

  it('fails on a fail gate even when others could retry', () => {
    const d = decideGates(0, [gate('a', 'fail'), gate('b', 'retry_phase')], {});
    expect(d.action).toBe('fail');
    expect(d.action !== 'pass' && d.gates).toEqual(['a']);
  });

  it('retries with a count, rolls back when any says so, and gives up after max_retries', () => {
    const retry = decideGates(2, [gate('t', 'retry_phase')], {});
    expect(retry).toMatchObject({ action: 'retry_phase', gates: ['t'], retries: { '2:t': 1 } });
    const rollback = decideGates(2, [gate('t', 'retry_phase'), gate('r', 'rollback', false, 3)], {
      '2:r': 1,
    });
    expect(rollback).toMatchObject({ action: 'rollback', retries: { '2:t': 1, '2:r': 2 } });
    const spent = decideGates(2, [gate('t', 'retry_phase')], { '2:t': 1 });
    expect(spent.action).toBe('fail');
    expect(spent.action === 'fail' && spent.errors.at(-1)).toBe(
      'gate "t": gave up after 1 retry_phase attempt(s)',
    );
    // Another phase's counter is not this one's.
    expect(decideGates(3, [gate('t', 'retry_phase')], { '2:t': 1 }).action).toBe('retry_phase');
  });

  it('waits for approval when only pause_for_approval gates failed, with evidence in the errors', () => {
    const d = decideGates(0, [gate('review', 'pause_for_approval'), gate('ok', 'fail', true)], {});
    expect(d).toMatchObject({ action: 'pause_for_approval', gates: ['review'] });
    expect(d.action !== 'pass' && d.errors[0]).toBe(
      'gate "review" (tool) failed: review said no; evidence: {"exit":1}',
    );
  });
});

describe('phases', () => {
  it('numbers attempts per phase', () => {
    expect(nextAttempt([], 0)).toBe(1);
    expect(nextAttempt([result(0, 1, 'failed'), result(0, 2, 'failed'), result(1, 1, 'completed')], 0)).toBe(
      3,
    );
  });

  it('snapshots the phase start only for a rollback gate with no earlier live checkpoint', () => {
    const gates = [{ on_fail: 'rollback' }];
    expect(needsStartSnapshot({ gates }, [], 1)).toBe(true);
    expect(needsStartSnapshot({ gates }, [checkpoint('CP1', 0)], 1)).toBe(false);
    expect(needsStartSnapshot({ gates }, [checkpoint('CP1', 0, true)], 1)).toBe(true);
    expect(needsStartSnapshot({ gates: [{ on_fail: 'fail' }] }, [], 1)).toBe(false);
  });

  it('lets fallback succeed on any success and every other strategy only on all', () => {
    const rs = [{ status: 'failed' as const }, { status: 'completed' as const }];
    expect(phaseSucceeded('fallback', rs)).toBe(true);
    expect(phaseSucceeded('parallel', rs)).toBe(false);
    expect(phaseSucceeded('sequential', [{ status: 'completed' }])).toBe(true);
  });

  it('counts artifacts from totals, or from the list of an older result', () => {
    expect(artifactTotals({ totals: { files: 2, bytes: 9 } })).toEqual({ files: 2, bytes: 9 });
    expect(artifactTotals({ files: [{ size: 3 }, { size: 4 }] })).toEqual({ files: 2, bytes: 7 });
  });
});

describe('requests', () => {
  const view = { runId: 'r1', state: 'running' as const, over: false };

  it('refuses a rollback to an unknown or rolled-back checkpoint, naming the live ones', () => {
    const checkpoints = [checkpoint('CP1', 0), checkpoint('CP2', 1, true)];
    expect(checkRollback({ checkpoint: 'CP1' }, { ...view, checkpoints })).toEqual({ checkpoint: 'CP1' });
    expect(() => checkRollback({ checkpoint: 'CP2' }, { ...view, checkpoints })).toThrow(
      'unknown checkpoint "CP2"; available: CP1',
    );
    expect(() => checkRollback({ checkpoint: 'CP1' }, { ...view, checkpoints: [] })).toThrow('none yet');
    expect(() =>
      checkRollback({ checkpoint: 'CP1' }, { ...view, over: true, state: 'completed', checkpoints }),
    ).toThrow('run r1 has completed; fork it instead');
    expect(() => checkRollback({}, { ...view, checkpoints })).toThrow(
      /^invalid rollback request: checkpoint: /,
    );
  });

  it('refuses a raise for a phase or agent the intake does not have', () => {
    const phases = [{ name: 'dev', agents: [{ role: 'coder' }, { role: 'coder' }] }] as never;
    expect(
      checkRaise({ scope: { level: 'agent', phase: 'dev', agent: 'coder-2' }, usd: 1 }, { ...view, phases }),
    ).toMatchObject({
      usd: 1,
    });
    expect(() => checkRaise({ scope: { level: 'phase', phase: 'qa' }, usd: 1 }, { ...view, phases })).toThrow(
      'run r1 has no phase "qa"; phases: dev',
    );
    expect(() =>
      checkRaise({ scope: { level: 'agent', phase: 'dev', agent: 'x' }, usd: 1 }, { ...view, phases }),
    ).toThrow('phase "dev" has no agent "x"; agents: coder, coder-2');
    expect(() => checkRaise({ scope: { level: 'run' }, usd: -1 }, { ...view, phases })).toThrow(
      /^invalid raiseBudget request: usd/,
    );
  });

  it('takes an approval only while one is awaited and not yet given', () => {
    expect(checkApprove({ note: 'ok' }, { runId: 'r1', state: 'paused', awaiting: {} })).toEqual({
      note: 'ok',
    });
    expect(() =>
      checkApprove({ note: 'ok' }, { runId: 'r1', state: 'running', awaiting: undefined }),
    ).toThrow('run r1 is not waiting for an approval (state: running)');
    expect(() =>
      checkApprove({ note: 'ok' }, { runId: 'r1', state: 'paused', awaiting: { decision: {} } }),
    ).toThrow();
    expect(() => checkApprove({ note: ' ' }, { runId: 'r1', state: 'paused', awaiting: {} })).toThrow(
      /note: must not be empty/,
    );
  });
});

describe('rollback', () => {
  it('marks later phases and checkpoints rolled back, forgets their agents, and resumes after the checkpoint', () => {
    const results = [
      result(0, 1, 'completed'),
      result(1, 1, 'completed'),
      result(2, 1, 'failed'),
      result(2, 2, 'rolled_back'),
    ];
    const cps = [checkpoint('CP1', 0), checkpoint('CP2', 1)];
    const row = (phase: string, id: string): AgentStatusRow => ({
      id,
      role: id,
      phase,
      workflowId: `w-${id}`,
      state: 'completed',
    });
    const rows = new Map([row('p0', 'a'), row('p1', 'b'), row('p2', 'c')].map((r) => [r.workflowId, r]));
    const next = markRolledBack(cps[0]!, results, cps, rows, ['p0', 'p1', 'p2']);
    expect(next).toBe(1);
    expect(results.map((r) => [r.status, r.rolledBackBy])).toEqual([
      ['completed', undefined],
      ['rolled_back', 'CP1'],
      ['rolled_back', 'CP1'],
      ['rolled_back', undefined],
    ]);
    expect(cps.map((c) => c.rolledBack)).toEqual([undefined, true]);
    expect([...rows.keys()]).toEqual(['w-a']);
  });

  it('sends a rollback gate back to the last live checkpoint before its phase', () => {
    const cps = [checkpoint('CP1', 0), checkpoint('CP2', 1, true), checkpoint('CP3', 2)];
    expect(previousCheckpoint(cps, 2)?.id).toBe('CP1');
    expect(previousCheckpoint(cps, 3)?.id).toBe('CP3');
    expect(previousCheckpoint(cps, 0)).toBeUndefined();
  });
});

describe('fork and continue-as-new', () => {
  it('inherits the phases up to the forked checkpoint and continues its numbering', () => {
    const rows = inheritedResults(['a', 'b', 'c'], 1, 'T');
    expect(rows.map((r) => [r.phase, r.status, r.costUsd])).toEqual([
      ['a', 'inherited', 0],
      ['b', 'inherited', 0],
    ]);
    expect(checkpointNumber('CP12')).toBe(12);
  });

  it('continues as new after PHASES_PER_RUN phases or when suggested, never after the last phase', () => {
    expect(dueForContinueAsNew(3, 20, PHASES_PER_RUN, false)).toBe(true);
    expect(dueForContinueAsNew(3, 20, 1, true)).toBe(true);
    expect(dueForContinueAsNew(3, 20, 1, false)).toBe(false);
    expect(dueForContinueAsNew(20, 20, PHASES_PER_RUN, true)).toBe(false);
  });
});

describe('run input', () => {
  it('fails a bad input for good with the field named', () => {
    let err: unknown;
    try {
      parseProjectInput({ runId: 'r' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    expect([f.type, f.nonRetryable]).toEqual(['InvalidRunInput', true]);
    expect(f.message).toMatch(/^invalid projectWorkflow input: .*spec/);
    expect(issuesOf([{ path: [], message: 'bad' }])).toBe('input: bad');
  });

  it('reports a failure by its cause type', () => {
    const cause = Object.assign(new Error('disk full'), { type: 'WorkspaceError' });
    expect(failureMessage(new Error('activity failed', { cause }))).toBe('WorkspaceError: disk full');
    expect(failureMessage('plain')).toBe('plain');
  });
});
