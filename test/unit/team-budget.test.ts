/**
 * Team budgets' pure parts: charging a ledger from a meter a little at a time (shared with project runs),
 * the team's ledger with roles as phases, the scope check of `raiseBudget` on a team, the raise command
 * and the role wording of a refusal, and per-role limits in the hierarchy policy.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { ConfigError } from '../../config/errors';
import { limitsFor, report, reserve, setLimit, totals } from '../../src/shared/budget';
import { chargeFromMeter, type MeterReading } from '../../src/shared/meter-charge';
import {
  addTeamAgent,
  checkTeamScope,
  teamLedger,
  teamRaiseCommand,
  teamReason,
} from '../../src/shared/team-budget';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-team-budget-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function reading(models: Record<string, [microUsd: number, input: number, output: number]>): MeterReading {
  return {
    models: Object.fromEntries(
      Object.entries(models).map(([model, [microUsd, input, output]]) => [
        model,
        {
          microUsd,
          pricedAs: model,
          usage: {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
          },
        },
      ]),
    ),
  };
}

const at = { key: 'team-x/manager-1', phase: 'manager', agent: 'manager-1' };

describe('chargeFromMeter', () => {
  it('charges only what the meter grew by since the last read, per model, exactly', () => {
    let ledger = teamLedger({ usd: 1 });
    const first = chargeFromMeter(ledger, {}, at, reading({ opus: [33_501, 10, 100] }));
    expect(first.microUsd).toBe(33_501);
    ledger = first.ledger;
    const second = chargeFromMeter(
      ledger,
      first.charged,
      at,
      reading({ opus: [67_003, 20, 200], haiku: [7, 3, 1] }),
    );
    expect(second.microUsd).toBe(33_502 + 7);
    const r = report(second.ledger);
    expect(r.models.map((m) => [m.model, m.usd, m.tokens])).toEqual([
      ['opus', 0.067003, 220],
      ['haiku', 0.000007, 4],
    ]);
    expect(Object.keys(second.ledger.charged).sort()).toEqual([
      'team-x/manager-1@haiku',
      'team-x/manager-1@opus',
      'team-x/manager-1@opus@110',
    ]);
  });

  it('charging the same reading twice, or an older one after a newer, changes nothing', () => {
    const ledger = teamLedger(undefined);
    const newer = chargeFromMeter(ledger, {}, at, reading({ opus: [200, 2, 20] }));
    const again = chargeFromMeter(newer.ledger, newer.charged, at, reading({ opus: [200, 2, 20] }));
    expect(again.microUsd).toBe(0);
    expect(again.ledger).toBe(newer.ledger);
    // Two reads that completed out of order: the older one must not rewind what was charged.
    const older = chargeFromMeter(again.ledger, again.charged, at, reading({ opus: [100, 1, 10] }));
    expect(older.microUsd).toBe(0);
    expect(older.charged).toEqual(newer.charged);
    const later = chargeFromMeter(older.ledger, older.charged, at, reading({ opus: [300, 3, 30] }));
    expect(later.microUsd).toBe(100);
    expect(totals(later.ledger).usd).toBe(0.0003);
  });

  it('flags a served model missing from the price table', () => {
    const r = chargeFromMeter(teamLedger(undefined), {}, at, {
      models: {
        'claude-opus-9': {
          microUsd: 5,
          pricedAs: 'claude-opus-4-1',
          unknownModel: true,
          usage: {
            input_tokens: 1,
            output_tokens: 1,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
          },
        },
      },
    });
    expect(r.unknown).toEqual([{ model: 'claude-opus-9', pricedAs: 'claude-opus-4-1' }]);
    expect(report(r.ledger).models[0]).toMatchObject({ model: 'claude-opus-9', pricedAs: 'claude-opus-4-1' });
  });
});

describe('the team ledger', () => {
  it('has the team limit at the run level and lists every agent under its role, limited or not', () => {
    let ledger = teamLedger({ usd: 0.05, tokens: 9000 });
    ledger = addTeamAgent(ledger, { id: 'manager-1', role: 'manager' }, undefined);
    ledger = addTeamAgent(ledger, { id: 'intern-1', role: 'intern' }, { usd: 0.01 });
    const r = report(ledger);
    expect(r.run.limit).toEqual({ usd: 0.05, tokens: 9000 });
    expect(r.agents.map((a) => [a.phase, a.agent, a.limit])).toEqual([
      ['manager', 'manager-1', {}],
      ['intern', 'intern-1', { usd: 0.01 }],
    ]);
    // The gateway admits the intern under the team's and its own limit; the manager under the team's.
    expect(limitsFor(ledger, 'intern', 'intern-1')).toEqual({
      run: { microUsd: 50_000, tokens: 9000 },
      agent: { microUsd: 10_000 },
    });
    expect(limitsFor(ledger, 'manager', 'manager-1')).toEqual({ run: { microUsd: 50_000, tokens: 9000 } });
  });

  it('an agent over its role limit is refused while a teammate still has room; a raise frees it', () => {
    let ledger = addTeamAgent(teamLedger({ usd: 1 }), { id: 'intern-1', role: 'intern' }, { usd: 0.01 });
    ledger = addTeamAgent(ledger, { id: 'manager-1', role: 'manager' }, undefined);
    ledger = chargeFromMeter(
      ledger,
      {},
      { key: 'x/intern-1', phase: 'intern', agent: 'intern-1' },
      reading({ opus: [12_000, 5, 50] }),
    ).ledger;
    const probe = (agent: string, phase: string) =>
      reserve(ledger, { key: 'probe', phase, agent, estimateUsd: 0, estimateTokens: 0 });
    const refused = probe('intern-1', 'intern');
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.exceeded.level).toBe('agent');
    expect(probe('manager-1', 'manager').ok).toBe(true);
    ledger = setLimit(ledger, { level: 'agent', phase: 'intern', agent: 'intern-1' }, { usd: 0.05 });
    expect(probe('intern-1', 'intern').ok).toBe(true);
  });
});

describe('checkTeamScope', () => {
  const team = {
    runId: 'team-x',
    roles: ['manager', 'architect', 'intern'],
    agents: [
      { id: 'manager-1', role: 'manager' },
      { id: 'intern-1', role: 'intern' },
    ],
  };
  it('takes the team, a role of the policy, and an agent under its own role', () => {
    expect(checkTeamScope({ level: 'run' }, team)).toBeUndefined();
    expect(checkTeamScope({ level: 'phase', phase: 'intern' }, team)).toBeUndefined();
    expect(checkTeamScope({ level: 'agent', phase: 'intern', agent: 'intern-1' }, team)).toBeUndefined();
  });
  it('names what is wrong: an unknown role, an unknown agent, an agent under another role', () => {
    expect(checkTeamScope({ level: 'phase', phase: 'qa' }, team)).toBe(
      'team run team-x has no role "qa"; roles: manager, architect, intern',
    );
    expect(checkTeamScope({ level: 'agent', phase: 'intern', agent: 'intern-9' }, team)).toBe(
      'team run team-x has no agent "intern-9"; agents: manager-1, intern-1',
    );
    expect(checkTeamScope({ level: 'agent', phase: 'manager', agent: 'intern-1' }, team)).toBe(
      'agent intern-1 is a intern, not a manager',
    );
  });
});

describe('words of a team pause', () => {
  it('the raise command names the agent, the role or the team', () => {
    expect(teamRaiseCommand('t1', { level: 'run' }, 'usd')).toBe(
      'orchestrator budget set --run t1 --max-usd <usd>',
    );
    expect(teamRaiseCommand('t1', { level: 'phase', phase: 'intern' }, 'tokens')).toBe(
      'orchestrator budget set --run t1 --max-tokens <n> --role intern',
    );
    expect(teamRaiseCommand('t1', { level: 'agent', phase: 'intern', agent: 'intern-1' }, 'usd')).toBe(
      'orchestrator budget set --run t1 --max-usd <usd> --agent intern-1',
    );
  });
  it('a refusal speaks of roles, not phases', () => {
    expect(
      teamReason(
        'agent "intern-1" in phase "intern" USD budget exhausted: limit $0.01, $0.02 spent',
        'intern',
      ),
    ).toBe('agent "intern-1" (role intern) USD budget exhausted: limit $0.01, $0.02 spent');
    expect(
      teamReason('phase "intern" token budget exhausted: limit 10 tokens, 12 tokens spent', 'intern'),
    ).toBe('role "intern" token budget exhausted: limit 10 tokens, 12 tokens spent');
    expect(teamReason('run USD budget exhausted: limit $0.05, $0.06 spent', 'intern')).toBe(
      'run USD budget exhausted: limit $0.05, $0.06 spent',
    );
  });
});

describe('per-role limits in the hierarchy policy', () => {
  function policyWith(roleExtra: string): string {
    const file = path.join(tmp, `h-${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(
      file,
      [
        'max_team_size: 4',
        'max_request_depth: 1',
        'roles:',
        '  manager:',
        '    persona: lead',
        '    can_request: [intern]',
        '  architect:',
        '    persona: design',
        '  intern:',
        '    persona: help',
        ...roleExtra.split('\n').map((l) => `    ${l}`),
        '',
      ].join('\n'),
    );
    return file;
  }
  it('budget_usd and budget_tokens of a role become its per-agent budget', () => {
    const p = loadHierarchyPolicy(policyWith('budget_usd: 0.02\nbudget_tokens: 5000'));
    expect(p.roles.intern?.budget).toEqual({ usd: 0.02, tokens: 5000 });
    expect(p.roles.manager?.budget).toBeUndefined();
  });
  it('a negative or fractional limit is refused with the field named', () => {
    expect(() => loadHierarchyPolicy(policyWith('budget_usd: -1'))).toThrow(ConfigError);
    expect(() => loadHierarchyPolicy(policyWith('budget_usd: -1'))).toThrow(/roles\.intern\.budget_usd/);
    expect(() => loadHierarchyPolicy(policyWith('budget_tokens: 1.5'))).toThrow(
      /roles\.intern\.budget_tokens/,
    );
  });
});
