import { describe, expect, it } from 'vitest';
import {
  LedgerSchema,
  charge,
  createLedger,
  describeExceeded,
  getLimit,
  isCharged,
  limitsFromSpec,
  release,
  remaining,
  report,
  reserve,
  setLimit,
  totals,
  type Ledger,
  type ReserveRequest,
} from '../../src/shared/budget';
import { ProjectSpecSchema } from '../../src/shared/spec';

function req(key: string, over: Partial<ReserveRequest> = {}): ReserveRequest {
  return { key, phase: 'dev', agent: 'coder', estimateUsd: 0.1, estimateTokens: 100, ...over };
}

function mustReserve(ledger: Ledger, r: ReserveRequest): Ledger {
  const res = reserve(ledger, r);
  if (!res.ok) throw new Error(`unexpected refusal: ${describeExceeded(res.exceeded)}`);
  return res.ledger;
}

const usage = {
  input_tokens: 100,
  output_tokens: 20,
  cache_creation_input_tokens: 5,
  cache_read_input_tokens: 7,
};

describe('budget ledger', () => {
  it('reserves, then charges the real cost in place of the reservation', () => {
    let l = createLedger({ run: { usd: 1 } });
    l = mustReserve(l, req('coder#1', { estimateUsd: 0.5 }));
    expect(totals(l)).toMatchObject({ usd: 0, reservedUsd: 0.5 });
    l = charge(l, { key: 'coder#1', phase: 'dev', agent: 'coder', model: 'm', usage, costUsd: 0.2 });
    expect(totals(l)).toMatchObject({ usd: 0.2, reservedUsd: 0, tokens: 132, turns: 1 });
    expect(isCharged(l, 'coder#1')).toBe(true);
  });

  it('a second charge with the same key does nothing (a retried activity never double-charges)', () => {
    let l = createLedger();
    const c = { key: 'coder#1', phase: 'dev', agent: 'coder', model: 'm', usage, costUsd: 0.3 };
    l = charge(l, c);
    const again = charge(l, { ...c, costUsd: 9 });
    expect(again).toBe(l);
    expect(totals(again).usd).toBe(0.3);
    expect(totals(again).turns).toBe(1);
  });

  it('refuses at the run level with the exceeded details', () => {
    let l = createLedger({ run: { usd: 1 } });
    l = charge(l, { key: 'a#1', phase: 'dev', agent: 'coder', model: 'm', usage: {}, costUsd: 0.7 });
    l = mustReserve(l, req('b#1', { estimateUsd: 0.2, agent: 'other' }));
    const res = reserve(l, req('a#2', { estimateUsd: 0.2 }));
    expect(res).toEqual({
      ok: false,
      exceeded: {
        level: 'run',
        scope: { level: 'run' },
        unit: 'usd',
        limit: 1,
        spent: 0.7,
        reserved: 0.2,
        requested: 0.2,
      },
    });
    // The exact fit is allowed.
    expect(reserve(l, req('a#2', { estimateUsd: 0.1 })).ok).toBe(true);
  });

  it('refuses at the phase level, counting only that phase', () => {
    let l = createLedger({ phases: { dev: { tokens: 1000 } } });
    l = charge(l, {
      key: 'x#1',
      phase: 'qa',
      agent: 'tester',
      model: 'm',
      usage: { input_tokens: 5000 },
      costUsd: 0,
    });
    l = charge(l, {
      key: 'a#1',
      phase: 'dev',
      agent: 'coder',
      model: 'm',
      usage: { input_tokens: 900 },
      costUsd: 0,
    });
    const res = reserve(l, req('a#2', { estimateTokens: 200 }));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.exceeded).toMatchObject({
      level: 'phase',
      scope: { level: 'phase', phase: 'dev' },
      unit: 'tokens',
    });
    expect(res.exceeded).toMatchObject({ limit: 1000, spent: 900, reserved: 0, requested: 200 });
    expect(describeExceeded(res.exceeded)).toBe(
      'phase "dev" token budget exhausted: limit 1000 tokens, 900 tokens spent, 0 tokens reserved, 200 tokens requested',
    );
    // qa has no limit: its spend does not block it.
    expect(reserve(l, req('t#1', { phase: 'qa', agent: 'tester', estimateTokens: 99999 })).ok).toBe(true);
  });

  it('refuses at the agent level, leaving other agents of the phase alone', () => {
    let l = createLedger({ agents: { dev: { coder: { usd: 0.5 } } } });
    l = charge(l, { key: 'a#1', phase: 'dev', agent: 'coder', model: 'm', usage: {}, costUsd: 0.45 });
    const res = reserve(l, req('a#2', { estimateUsd: 0.1 }));
    expect(res.ok).toBe(false);
    if (!res.ok) {
      expect(res.exceeded.level).toBe('agent');
      expect(res.exceeded.scope).toEqual({ level: 'agent', phase: 'dev', agent: 'coder' });
    }
    expect(reserve(l, req('r#1', { agent: 'reviewer' })).ok).toBe(true);
    // The same agent id in another phase has no limit.
    expect(reserve(l, req('a#3', { phase: 'qa' })).ok).toBe(true);
  });

  it('refuses a zero estimate once a budget is used up', () => {
    let l = createLedger({ run: { usd: 0.5 } });
    l = charge(l, { key: 'a#1', phase: 'dev', agent: 'coder', model: 'm', usage: {}, costUsd: 0.6 }); // overshoot is recorded
    expect(totals(l).usd).toBe(0.6);
    const res = reserve(l, req('a#2', { estimateUsd: 0 }));
    expect(res.ok).toBe(false);
  });

  it('raising a limit lets the refused turn through; units not given keep their value', () => {
    let l = createLedger({ phases: { dev: { usd: 0.1, tokens: 50 } } });
    expect(reserve(l, req('a#1', { estimateUsd: 0.2, estimateTokens: 10 })).ok).toBe(false);
    l = setLimit(l, { level: 'phase', phase: 'dev' }, { usd: 1 });
    expect(getLimit(l, { level: 'phase', phase: 'dev' })).toEqual({ usd: 1, tokens: 50 });
    expect(reserve(l, req('a#1', { estimateUsd: 0.2, estimateTokens: 10 })).ok).toBe(true);
    l = setLimit(l, { level: 'agent', phase: 'dev', agent: 'coder' }, { tokens: 5 });
    expect(reserve(l, req('a#1', { estimateUsd: 0.2, estimateTokens: 10 })).ok).toBe(false);
    l = setLimit(l, { level: 'run' }, { usd: 3 });
    expect(getLimit(l, { level: 'run' })).toEqual({ usd: 3 });
  });

  it('setLimit rejects an incomplete scope', () => {
    const l = createLedger();
    expect(() => setLimit(l, { level: 'agent', phase: 'dev' }, { usd: 1 })).toThrow(/agent/);
    expect(() => setLimit(l, { level: 'phase' }, { usd: 1 })).toThrow(/phase/);
  });

  it('re-reserving a key replaces its reservation instead of adding to it', () => {
    let l = createLedger({ run: { usd: 1 } });
    l = mustReserve(l, req('a#1', { estimateUsd: 0.6 }));
    l = mustReserve(l, req('a#1', { estimateUsd: 0.7 }));
    expect(totals(l).reservedUsd).toBe(0.7);
    l = release(l, 'a#1');
    expect(totals(l).reservedUsd).toBe(0);
  });

  it('remaining is the smallest allowance across levels, excluding the own reservation on request', () => {
    let l = createLedger({
      run: { usd: 10, tokens: 100_000 },
      phases: { dev: { usd: 2 } },
      agents: { dev: { coder: { usd: 5, tokens: 3000 } } },
    });
    l = charge(l, {
      key: 'o#1',
      phase: 'dev',
      agent: 'other',
      model: 'm',
      usage: { output_tokens: 500 },
      costUsd: 0.5,
    });
    l = mustReserve(l, req('a#1', { estimateUsd: 0.25, estimateTokens: 1000 }));
    expect(remaining(l, 'dev', 'coder')).toEqual({ usd: 1.25, tokens: 2000 });
    expect(remaining(l, 'dev', 'coder', 'a#1')).toEqual({ usd: 1.5, tokens: 3000 });
    expect(remaining(createLedger(), 'dev', 'coder')).toEqual({});
    // Floored at zero when overspent.
    l = charge(l, { key: 'o#2', phase: 'dev', agent: 'other', model: 'm', usage: {}, costUsd: 5 });
    expect(remaining(l, 'dev', 'coder').usd).toBe(0);
  });

  it('reports spend per run, phase, agent and model', () => {
    let l = createLedger({ run: { usd: 5 }, phases: { qa: { tokens: 10 } } });
    const c = (key: string, phase: string, agent: string, model: string, costUsd: number) => {
      l = charge(l, { key, phase, agent, model, usage: { input_tokens: 10, output_tokens: 1 }, costUsd });
    };
    c('a#1', 'dev', 'coder', 'claude-opus-5-5', 0.5);
    c('a#2', 'dev', 'coder', 'claude-haiku-5-5', 0.01);
    c('b#1', 'dev', 'reviewer', 'claude-opus-5-5', 0.25);
    c('c#1', 'design', 'architect', 'claude-sonnet-5-5', 0.125);
    const r = report(l);
    expect(r.run).toMatchObject({ usd: 0.885, tokens: 44, turns: 4, limit: { usd: 5 } });
    expect(r.phases).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ phase: 'dev', usd: 0.76, tokens: 33, turns: 3 }),
        expect.objectContaining({ phase: 'design', usd: 0.125 }),
        expect.objectContaining({ phase: 'qa', usd: 0, tokens: 0, limit: { tokens: 10 } }),
      ]),
    );
    expect(r.agents.find((a) => a.agent === 'coder')).toMatchObject({ phase: 'dev', usd: 0.51, turns: 2 });
    const byModel = Object.fromEntries(r.models.map((m) => [m.model, m.usd]));
    expect(byModel).toEqual({
      'claude-opus-5-5': 0.75,
      'claude-haiku-5-5': 0.01,
      'claude-sonnet-5-5': 0.125,
    });
    expect(r.models.find((m) => m.model === 'claude-opus-5-5')).toMatchObject({
      inputTokens: 20,
      outputTokens: 2,
    });
  });

  it('a rollback refunds nothing: release after charge leaves spend, and redone work is charged again', () => {
    let l = createLedger({ run: { usd: 1 } });
    l = mustReserve(l, req('a#1', { estimateUsd: 0.4 }));
    l = charge(l, { key: 'a#1', phase: 'dev', agent: 'coder', model: 'm', usage: {}, costUsd: 0.4 });
    // The workflow rolls back to a checkpoint before turn 1 and releases what it held.
    l = release(l, 'a#1');
    expect(totals(l).usd).toBe(0.4);
    // The redo is a new turn attempt with a new key: it is charged on top.
    l = mustReserve(l, req('a#1-redo', { estimateUsd: 0.4 }));
    l = charge(l, { key: 'a#1-redo', phase: 'dev', agent: 'coder', model: 'm', usage: {}, costUsd: 0.4 });
    expect(totals(l).usd).toBe(0.8);
    expect(reserve(l, req('a#2', { estimateUsd: 0.4 })).ok).toBe(false);
  });

  it('sums in exact micro-dollars (no float drift)', () => {
    let l = createLedger({ run: { usd: 1 } });
    let floatSum = 0;
    for (let i = 0; i < 10; i++) {
      l = charge(l, { key: `a#${i}`, phase: 'dev', agent: 'coder', model: 'm', usage: {}, costUsd: 0.1 });
      floatSum += 0.1;
    }
    expect(floatSum).not.toBe(1); // the drift the ledger avoids
    expect(totals(l).usd).toBe(1);
    expect(remaining(l, 'dev', 'coder').usd).toBe(0);
    // The CLI's reported cost for the reference turn.
    l = charge(createLedger(), {
      key: 'x',
      phase: 'p',
      agent: 'a',
      model: 'm',
      usage: {},
      costUsd: 0.000646,
    });
    expect(l.spend.p?.a?.m?.microUsd).toBe(646);
  });

  it('rejects invalid amounts loudly', () => {
    const l = createLedger();
    expect(() =>
      charge(l, { key: 'k', phase: 'p', agent: 'a', model: 'm', usage: {}, costUsd: NaN }),
    ).toThrow(RangeError);
    expect(() => reserve(l, req('k', { estimateUsd: -1 }))).toThrow(RangeError);
    expect(() => reserve(l, req('k', { estimateTokens: 1.5 }))).toThrow(RangeError);
  });

  it('is plain data: survives a JSON round trip and validates', () => {
    let l = createLedger({ run: { usd: 2 }, agents: { dev: { coder: { tokens: 10_000 } } } });
    l = mustReserve(l, req('a#1'));
    l = charge(l, { key: 'b#1', phase: 'dev', agent: 'b', model: 'm', usage, costUsd: 0.3 });
    const copy = LedgerSchema.parse(JSON.parse(JSON.stringify(l)));
    expect(copy).toEqual(l);
    expect(charge(copy, { key: 'b#1', phase: 'dev', agent: 'b', model: 'm', usage, costUsd: 0.3 })).toBe(
      copy,
    );
  });

  it('does not mutate the ledger it is given', () => {
    const l = createLedger({ run: { usd: 1 } });
    const before = JSON.stringify(l);
    const r = reserve(l, req('a#1'));
    charge(l, { key: 'a#1', phase: 'dev', agent: 'coder', model: 'm', usage, costUsd: 0.1 });
    setLimit(l, { level: 'run' }, { usd: 5 });
    expect(r.ok).toBe(true);
    expect(JSON.stringify(l)).toBe(before);
  });

  it('builds limits from a spec', () => {
    const spec = ProjectSpecSchema.parse({
      project: { name: 'p' },
      constraints: { budget_usd: 3 },
      phases: [
        {
          name: 'dev',
          budget: { tokens: 5000 },
          agents: [
            { id: 'coder', role: 'developer', backend: 'cli', budget_usd: 1 },
            { role: 'reviewer', backend: 'cli' },
          ],
        },
      ],
    });
    const l = createLedger(limitsFromSpec(spec));
    expect(getLimit(l, { level: 'run' })).toEqual({ usd: 3 });
    expect(getLimit(l, { level: 'phase', phase: 'dev' })).toEqual({ tokens: 5000 });
    expect(getLimit(l, { level: 'agent', phase: 'dev', agent: 'coder' })).toEqual({ usd: 1 });
    expect(getLimit(l, { level: 'agent', phase: 'dev', agent: 'reviewer' })).toEqual({});
  });
});
