/**
 * The pure decisions of teamWorkflow and teamAgentWorkflow (workflows/team/), tested without a server:
 * what a team shows and carries, how refusals and spoofed proofs are recorded, what a budget pause names,
 * which raises are refused, how an agent's end is read, when the team may continue as new, and what an
 * agent is prompted with.
 */
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, RetryState } from '@temporalio/common';
import { describe as group, expect, it } from 'vitest';
import { charge, type Ledger } from '../../src/shared/budget';
import { sha256Hex } from '../../src/shared/sha256';
import {
  TeamPolicySchema,
  TeamRole,
  type TeamAgentOutcome,
  type TeamPolicyInput,
  type TeamRefusal,
  type TeamWorkflowInput,
} from '../../src/shared/team';
import { addTeamAgent, teamLedger } from '../../src/shared/team-budget';
import type { TeamCarry } from '../../src/shared/team-carry';
import { workDone } from '../../workflows/team/agent-run';
import { refusalScope } from '../../workflows/team/agent-turn';
import { proofOwner, spoofMessage } from '../../workflows/team/auth';
import { checkTeamRaise, pauseScope, pauseText } from '../../workflows/team/budget';
import { inheritedMeters, inheritedRecords, teamCarry } from '../../workflows/team/carry';
import { isQuiet } from '../../workflows/team/continue';
import {
  agentFailure,
  budgetRefusal,
  carriedAgentResult,
  cliResultType,
  describe,
  failureSummary,
  failureType,
} from '../../workflows/team/failures';
import { continuePrompt, firstPrompt, withMessages } from '../../workflows/team/prompts';
import {
  defaultInstructions,
  initialRoster,
  keepRecentRefusals,
  REFUSALS_KEPT,
  refusedRequest,
  spawnResult,
} from '../../workflows/team/requests';
import { applyFailure, applyResult, failureStopReason } from '../../workflows/team/roster';
import { parseTeamInput } from '../../workflows/team/run';
import {
  AUDIT_IN_STATUS,
  budgetState,
  isOver,
  policySummary,
  statusRows,
  teamCost,
  teamPausedReason,
  teamStatus,
} from '../../workflows/team/status';
import type { AgentRecord } from '../../workflows/team/types';

const POLICY_INPUT: TeamPolicyInput = {
  maxTeamSize: 5,
  maxRequestDepth: 2,
  roles: {
    manager: { title: 'manager', persona: 'You manage.', canRequest: ['software-engineer'] },
    architect: { title: 'architect', persona: 'You design.', initialInstructions: '- Design for {goal}' },
    'software-engineer': { title: 'software engineer', persona: 'You build.' },
  },
};
const policy = TeamPolicySchema.parse(POLICY_INPUT);

function teamInput(over: Partial<TeamWorkflowInput> = {}): TeamWorkflowInput {
  return parseTeamInput({
    runId: 'team-1',
    goal: 'ship it',
    workspace: '/ws',
    outputsDir: '/out',
    policy: POLICY_INPUT,
    ...over,
  });
}

function agent(id: string, over: Partial<AgentRecord> = {}): AgentRecord {
  const role = id.replace(/-\d+$/, '');
  return {
    id,
    name: id,
    role,
    depth: 0,
    requestedBy: 'operator',
    workflowId: `team-1/${id}`,
    dir: `/ws/.team/${id}`,
    state: 'running',
    requestedAt: '2026-11-30T00:00:00.000Z',
    costUsd: 0,
    turns: 0,
    tasks: { completed: 0, total: 0 },
    instructions: 'do things',
    ...over,
  };
}

function failedResult(over: Partial<TeamAgentOutcome> = {}): TeamAgentOutcome {
  return {
    agentId: 'architect-1',
    state: 'failed',
    costUsd: 0.25,
    turns: 3,
    tasks: { completed: 1, total: 2 },
    archivedTo: '/ws/.team/architect-1-failed',
    sessionId: 'sess-a',
    error: 'script exited with code 7',
    errorType: 'AgentExited',
    startedAt: '2026-11-30T00:00:00.000Z',
    completedAt: '2026-11-30T00:01:00.000Z',
    ...over,
  };
}

group('parseTeamInput', () => {
  it('fills defaults and fails a bad input naming the field, not retried', () => {
    const input = teamInput();
    expect(input.engineers).toBe(0);
    expect(input.backend).toBe('cli');
    let err: unknown;
    try {
      parseTeamInput({ ...input, workspace: 'relative' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidTeamInput');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(/workspace: must be an absolute path/);
  });
});

group('status', () => {
  it('rows leave out what only the workflow holds and show a chain as its use count', () => {
    const rows = statusRows([
      agent('manager-1', {
        cap: { anchor: 'a'.repeat(64), used: 3 },
        capability: { file: '/f', anchor: 'b' },
      }),
      agent('architect-1', { inherited: true }),
    ]);
    expect(rows[0]).toMatchObject({ id: 'manager-1', proofsUsed: 3 });
    for (const k of ['instructions', 'handle', 'inherited', 'cap', 'capability']) {
      expect(rows[0]).not.toHaveProperty(k);
      expect(rows[1]).not.toHaveProperty(k);
    }
    expect(rows[1]).not.toHaveProperty('proofsUsed');
  });

  it('a paused running team is `paused` to budget status; every pause is named', () => {
    const pauses = new Map([
      ['a', 'run limit hit'],
      ['b', 'role limit hit'],
    ]);
    expect(teamPausedReason(new Map())).toBeUndefined();
    expect(teamPausedReason(pauses)).toBe('run limit hit; role limit hit');
    expect(budgetState('running', 2)).toBe('paused');
    expect(budgetState('running', 0)).toBe('running');
    expect(budgetState('stopping', 2)).toBe('stopping');
    expect(['completed', 'stopped', 'failed'].every((s) => isOver(s as never))).toBe(true);
    expect(isOver('running') || isOver('stopping')).toBe(false);
  });

  it('cost is the ledger total when the team keeps one, else the rounded sum of reports', () => {
    const records = [agent('manager-1', { costUsd: 0.1 }), agent('architect-1', { costUsd: 0.2 })];
    expect(teamCost(records, undefined)).toBe(0.3);
    let ledger: Ledger = addTeamAgent(teamLedger(undefined), { id: 'manager-1', role: 'manager' }, undefined);
    ledger = charge(ledger, {
      key: 'k',
      phase: 'manager',
      agent: 'manager-1',
      model: 'claude-sonnet-4-5',
      usage: { input_tokens: 10, output_tokens: 0 },
      costUsd: 1.234567,
      microUsd: 1_234_567,
    });
    expect(teamCost(records, ledger)).toBe(1.234567);
  });

  it('the whole status: latest audit entries only, continuedAsNew only after a continue', () => {
    const input = teamInput();
    const audit = Array.from({ length: AUDIT_IN_STATUS + 5 }, (_, i) => ({ seq: i + 1 }) as never);
    const base = {
      input,
      state: 'running' as const,
      startedAt: 's',
      completedAt: undefined,
      stopReason: undefined,
      pauses: new Map<string, string>(),
      records: [agent('manager-1'), agent('architect-1', { state: 'completed' })],
      refusals: [],
      audit,
      ledger: undefined,
      continuedAsNew: undefined,
    };
    const s = teamStatus(base);
    expect(s.audit).toHaveLength(AUDIT_IN_STATUS);
    expect((s.audit[0] as { seq: number }).seq).toBe(6);
    expect(s.totals).toEqual({ costUsd: 0, agents: 2, active: 1 });
    expect(s).not.toHaveProperty('continuedAsNew');
    expect(s).not.toHaveProperty('pausedReason');
    expect(s.policy).toEqual(policySummary(policy));
    expect(s.policy.canRequest.manager).toEqual(['software-engineer']);
    const later = teamStatus({ ...base, continuedAsNew: 2, pauses: new Map([['x', 'why']]) });
    expect(later.continuedAsNew).toBe(2);
    expect(later.pausedReason).toBe('why');
  });
});

group('carry', () => {
  it('carries rows and references, never instructions or handles, and counts the execution', () => {
    const records = [agent('manager-1', { inherited: true, cap: { anchor: 'x', used: 1 } })];
    const carry = teamCarry({
      startedAt: 's',
      continuedAsNew: undefined,
      state: 'stopping',
      stopReason: 'enough',
      stopSent: true,
      failedBy: records[0],
      counters: { manager: 1 },
      records,
      refusals: [],
      ledger: teamLedger(undefined),
      budgetVersion: 4,
      metered: new Map([
        ['manager-1', { charged: {}, chain: Promise.resolve(), running: true, paused: true }],
      ]),
      pauses: new Map([['manager-1', 'why']]),
      audit: { lastSeq: 9, head: 'h' },
    });
    expect(carry.continuedAsNew).toBe(1);
    expect(carry.failedBy).toBe('manager-1');
    expect(carry.agents[0]).not.toHaveProperty('instructions');
    expect(carry.agents[0]).not.toHaveProperty('inherited');
    expect(carry.agents[0]!.cap).toEqual({ anchor: 'x', used: 1 });
    expect(carry.meters).toEqual([['manager-1', { charged: {}, running: true, paused: true }]]);
    expect(carry.pauses).toEqual([['manager-1', 'why']]);
    expect(JSON.parse(JSON.stringify(carry))).toEqual(carry);
  });

  it('the next execution signals the active agents by id and knows the ended ones', () => {
    const carry = {
      agents: [agent('manager-1'), agent('architect-1', { state: 'completed' })],
      meters: [['manager-1', { charged: {}, running: true, paused: false }]],
    } as unknown as TeamCarry;
    const records = inheritedRecords(carry);
    expect(records[0]).toMatchObject({ inherited: true, instructions: '' });
    expect(records[1]).not.toHaveProperty('inherited');
    expect(inheritedRecords(undefined)).toEqual([]);
    expect(inheritedMeters(carry).get('manager-1')).toMatchObject({ running: true, paused: false });
  });

  it('requests queued during a drain ride with their instructions and start in the next execution', () => {
    const queued = agent('engineer-3', { state: 'starting', instructions: '- build the parser' });
    const records = [agent('manager-1', { cap: { anchor: 'x', used: 1 } }), queued];
    const parts = {
      startedAt: 's',
      continuedAsNew: 1,
      state: 'running' as const,
      stopReason: undefined,
      stopSent: false,
      failedBy: undefined,
      counters: { manager: 1, engineer: 3 },
      records,
      refusals: [],
      ledger: teamLedger(undefined),
      budgetVersion: 0,
      metered: new Map(),
      pauses: new Map(),
      audit: { lastSeq: 1 },
    };
    expect(teamCarry(parts)).not.toHaveProperty('queued');
    const carry = teamCarry({ ...parts, queued: [queued] });
    expect(carry.queued).toEqual([{ id: 'engineer-3', instructions: '- build the parser' }]);
    expect(carry.agents[1]).not.toHaveProperty('instructions');
    const next = inheritedRecords(carry);
    // Never started, so not signalled by id as an inherited agent: the next execution launches it.
    expect(next[1]).toMatchObject({
      id: 'engineer-3',
      state: 'starting',
      instructions: '- build the parser',
    });
    expect(next[1]).not.toHaveProperty('inherited');
    expect(next[0]).toMatchObject({ inherited: true, instructions: '' });
  });

  it("end claims and message digests ride only for agents still active (an ended agent's are over)", () => {
    const records = [agent('manager-1'), agent('architect-1', { state: 'completed' })];
    const claim = (agentId: string) => ({
      agentId,
      state: 'completed' as const,
      costUsd: 0,
      turns: 1,
      tasks: { completed: 1, total: 1 },
      startedAt: 's',
      completedAt: 'c',
    });
    const carry = teamCarry({
      startedAt: 's',
      continuedAsNew: 0,
      state: 'running',
      stopReason: undefined,
      stopSent: false,
      failedBy: undefined,
      counters: {},
      records,
      refusals: [],
      ledger: teamLedger(undefined),
      budgetVersion: 0,
      metered: new Map(),
      pauses: new Map(),
      audit: { lastSeq: 1 },
      // The manager's own end, taken just before continuing (its child result never came to this
      // execution); the architect's result came, so its claim is over.
      claimedEnds: new Map([
        ['manager-1', claim('manager-1')],
        ['architect-1', claim('architect-1')],
      ]),
      sentMessages: new Map([
        ['manager-1', ['d1']],
        ['architect-1', ['d2']],
      ]),
    });
    expect(carry.claimedEnds).toEqual([claim('manager-1')]);
    expect(carry.sentMessages).toEqual([['manager-1', ['d1']]]);
    expect(JSON.parse(JSON.stringify(carry))).toEqual(carry);
  });

  it('continues only when nothing is in flight', () => {
    const idle = { pending: 0, finishing: 0, reading: 0, records: [agent('m-1')], handlersFinished: true };
    expect(isQuiet(idle)).toBe(true);
    expect(isQuiet({ ...idle, pending: 1 })).toBe(false);
    expect(isQuiet({ ...idle, finishing: 1 })).toBe(false);
    expect(isQuiet({ ...idle, reading: 1 })).toBe(false);
    expect(isQuiet({ ...idle, handlersFinished: false })).toBe(false);
    expect(isQuiet({ ...idle, records: [agent('m-1', { state: 'starting' })] })).toBe(false);
  });
});

group('requests', () => {
  it('a refusal holds short strings whatever the sender put there', () => {
    expect(refusedRequest({ role: 'x'.repeat(500), name: { evil: true }, requestedBy: 7 })).toEqual({
      role: 'x'.repeat(100),
      name: '{"evil":true}',
      requestedBy: '7',
    });
    expect(refusedRequest(undefined)).toEqual({ role: '"?"', name: '"?"', requestedBy: '"?"' });
  });

  it('status keeps the newest refusals only', () => {
    const refusals: TeamRefusal[] = Array.from({ length: REFUSALS_KEPT + 7 }, (_, i) => ({
      at: String(i),
      source: 'signal',
      request: { role: 'r', name: 'n', requestedBy: 'b' },
      reason: `#${i}`,
    }));
    keepRecentRefusals(refusals);
    expect(refusals).toHaveLength(REFUSALS_KEPT);
    expect(refusals[0]!.reason).toBe('#7');
  });

  it('a spawn result tells the requester where the agent is and whether it was a duplicate', () => {
    expect(spawnResult(agent('software-engineer-2', { depth: 1 }), true)).toEqual({
      agentId: 'software-engineer-2',
      name: 'software-engineer-2',
      role: 'software-engineer',
      workflowId: 'team-1/software-engineer-2',
      dir: '/ws/.team/software-engineer-2',
      depth: 1,
      state: 'running',
      duplicate: true,
    });
  });

  it('a team starts with a manager, an architect, then its engineers and interns', () => {
    expect(initialRoster({ engineers: 2, interns: 1 }, TeamRole)).toEqual([
      ['manager', 'manager'],
      ['architect', 'architect'],
      ['software-engineer', 'engineer-1'],
      ['software-engineer', 'engineer-2'],
      ['intern', 'intern-1'],
    ]);
  });

  it('default instructions: the role template with the goal, a placeholder script for scripts', () => {
    const input = teamInput();
    expect(defaultInstructions(input, 'architect', 'architect')).toBe('- Design for ship it');
    expect(defaultInstructions(input, 'manager', 'manager')).toBe('- Contribute to the team goal: ship it');
    expect(defaultInstructions({ ...input, backend: 'script' }, 'manager', 'boss')).toBe(
      'echo "manager boss: no script given"',
    );
  });
});

group('auth', () => {
  it('names the agent whose chain a proof belongs to, and nobody for a malformed proof', () => {
    const proof = 'c'.repeat(64);
    const owner = agent('architect-1', { cap: { anchor: sha256Hex(proof), used: 0 } });
    const records = [agent('manager-1', { cap: { anchor: 'd'.repeat(64), used: 0 } }), owner];
    expect(proofOwner(records, proof)).toBe(owner);
    expect(proofOwner(records, 'e'.repeat(64))).toBeUndefined();
    expect(proofOwner(records, 'not hex')).toBeUndefined();
    expect(proofOwner(records, 42)).toBeUndefined();
  });

  it('a spoof message names the claimed sender (cut) and the proof owner when known', () => {
    expect(spoofMessage('manager-1', 'no proof')).toBe(
      'spoof attempt: the request does not prove it comes from manager-1 (no proof)',
    );
    expect(spoofMessage('m'.repeat(300), 'bad', 'intern-1')).toBe(
      `spoof attempt: the request does not prove it comes from ${'m'.repeat(100)} (bad); the proof is intern-1's`,
    );
  });
});

group('budget', () => {
  const rec = agent('software-engineer-1');

  it('a refusal scope by level; a pause says who waits and how to raise it', () => {
    expect(pauseScope('run', rec)).toEqual({ level: 'run' });
    expect(pauseScope('phase', rec)).toEqual({ level: 'phase', phase: 'software-engineer' });
    expect(pauseScope('agent', rec)).toEqual({
      level: 'agent',
      phase: 'software-engineer',
      agent: 'software-engineer-1',
    });
    const agentPause = pauseText('team-1', rec, pauseScope('agent', rec), 'limit hit', 'usd');
    expect(agentPause).toMatch(/^limit hit; raise it with: .*team-1/);
    const teamPause = pauseText('team-1', rec, pauseScope('run', rec), 'limit hit', 'tokens');
    expect(teamPause).toMatch(/^limit hit \(software-engineer-1 waits\); raise it with: .*tokens/);
  });

  it('refuses a raise that is malformed, on a team without budgets, after the end, or out of scope', () => {
    const ctx = {
      runId: 'team-1',
      state: 'running' as const,
      budgets: true,
      roles: ['manager', 'software-engineer'],
      agents: [rec],
    };
    expect(checkTeamRaise({ scope: { level: 'run' }, usd: 5 }, ctx)).toMatchObject({ usd: 5 });
    expect(() => checkTeamRaise({ scope: { level: 'run' } }, ctx)).toThrow(
      /invalid raiseBudget request: usd/,
    );
    expect(() => checkTeamRaise({ scope: { level: 'run' }, usd: 5 }, { ...ctx, budgets: false })).toThrow(
      /before team budgets/,
    );
    expect(() => checkTeamRaise({ scope: { level: 'run' }, usd: 5 }, { ...ctx, state: 'stopped' })).toThrow(
      /has stopped; its budget can no longer change/,
    );
    expect(() => checkTeamRaise({ scope: { level: 'phase', phase: 'ceo' }, usd: 5 }, ctx)).toThrow(
      /no role "ceo"/,
    );
  });
});

group("an agent's end", () => {
  it('a result is copied; a failure reads what the agent carried in its failure', () => {
    const rec = agent('architect-1', { sessionId: 'old' });
    applyResult(rec, { ...failedResult(), state: 'completed', error: undefined, errorType: undefined });
    expect(rec).toMatchObject({ state: 'completed', costUsd: 0.25, turns: 3, sessionId: 'sess-a' });
    expect(rec).not.toHaveProperty('errorType');

    const failed = agent('architect-1', { costUsd: 0.01, sessionId: 'old' });
    const err = new ChildWorkflowFailure(
      'ns',
      { workflowId: 'team-1/architect-1', runId: 'r' },
      'teamAgentWorkflow',
      RetryState.NON_RETRYABLE_FAILURE,
      agentFailure(failedResult()),
    );
    applyFailure(failed, err, 'now');
    expect(failed).toMatchObject({
      state: 'failed',
      costUsd: 0.25,
      error: 'script exited with code 7',
      errorType: 'AgentExited',
      completedAt: '2026-11-30T00:01:00.000Z',
      archivedTo: '/ws/.team/architect-1-failed',
    });
  });

  it('a failure that carried nothing is described and typed, and keeps what the record knew', () => {
    const rec = agent('manager-1', { costUsd: 0.5, turns: 2, sessionId: 's' });
    applyFailure(rec, new Error('its workflow cannot be reached'), 'now');
    expect(rec).toMatchObject({
      state: 'failed',
      costUsd: 0.5,
      turns: 2,
      sessionId: 's',
      error: 'its workflow cannot be reached',
      errorType: 'AgentFailed',
      completedAt: 'now',
    });
  });

  it('policy stop: a failed agent stops a running team, naming it', () => {
    const rec = agent('architect-1', { error: 'x'.repeat(400) });
    expect(failureStopReason({ onAgentFailure: 'continue' }, 'running', rec)).toBeUndefined();
    expect(failureStopReason({ onAgentFailure: 'stop' }, 'stopping', rec)).toBeUndefined();
    const reason = failureStopReason({ onAgentFailure: 'stop' }, 'running', rec)!;
    expect(reason).toBe(`agent architect-1 (architect-1) failed: ${'x'.repeat(300)}`);
    const typed = failureStopReason(
      { onAgentFailure: 'stop' },
      'running',
      agent('a-1', { errorType: 'CliError' }),
    );
    expect(typed).toBe('agent a-1 (a-1) failed: CliError');
  });
});

group('failures', () => {
  it("a failed agent's failure is typed by its classified failure and carries its result", () => {
    const f = agentFailure(failedResult());
    expect(f.type).toBe('AgentExited');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toBe('architect-1 failed: script exited with code 7');
    expect(carriedAgentResult(f)).toEqual(failedResult());
    expect(agentFailure(failedResult({ errorType: undefined, error: undefined })).type).toBe('AgentFailed');
  });

  it('reads a carried result only when it is one', () => {
    expect(carriedAgentResult(new Error('x'))).toBeUndefined();
    expect(carriedAgentResult(ApplicationFailure.create({ message: 'x', details: ['str'] }))).toBeUndefined();
    const completed = ApplicationFailure.create({
      message: 'x',
      details: [{ ...failedResult(), state: 'completed' }],
    });
    expect(carriedAgentResult(completed)).toBeUndefined();
  });

  it('types: claude result subtypes, registered failure types, anything else AgentFailed', () => {
    expect(cliResultType('error_max_turns')).toBe('MaxTurnsExceeded');
    expect(cliResultType('error_max_budget_usd')).toBe('BudgetExhausted');
    expect(cliResultType('error_during_execution')).toBe('CliError');
    const activity = (cause: Error) =>
      new ActivityFailure('x', 'claudeTurn', '1', RetryState.NON_RETRYABLE_FAILURE, 'w', cause);
    expect(failureType(activity(ApplicationFailure.create({ message: 'm', type: 'CliError' })))).toBe(
      'CliError',
    );
    expect(failureType(activity(ApplicationFailure.create({ message: 'm', type: 'Whatever' })))).toBe(
      'AgentFailed',
    );
    expect(failureType(new Error('plain'))).toBe('AgentFailed');
  });

  it("a budget refusal and a failed turn's summary are read from the activity failure", () => {
    const refusal = ApplicationFailure.create({
      message: 'agent limit hit',
      type: 'BudgetExceeded',
      details: [{ costUsd: 0.1, budgetRefusal: { level: 'phase', unit: 'tokens' } }],
    });
    const err = new ActivityFailure('x', 'claudeTurn', '1', RetryState.NON_RETRYABLE_FAILURE, 'w', refusal);
    expect(budgetRefusal(err)).toBe(refusal);
    expect(budgetRefusal(refusal)).toBeUndefined();
    expect(failureSummary(err)).toEqual({ costUsd: 0.1, budgetRefusal: { level: 'phase', unit: 'tokens' } });
    expect(refusalScope(failureSummary(err)?.budgetRefusal)).toEqual({ level: 'phase', unit: 'tokens' });
    expect(refusalScope({ level: 'weird', unit: 'weird' })).toEqual({ level: 'agent', unit: 'usd' });
    expect(refusalScope(undefined)).toEqual({ level: 'agent', unit: 'usd' });
    expect(describe(err)).toBe('BudgetExceeded: agent limit hit');
    expect(describe('boom')).toBe('boom');
  });
});

group('agent turns', () => {
  it('done when the agent says so, or when every listed task is completed', () => {
    expect(workDone(true, { completed: 0, total: 0 })).toBe(true);
    expect(workDone(false, { completed: 0, total: 0 })).toBe(false);
    expect(workDone(false, { completed: 1, total: 2 })).toBe(false);
    expect(workDone(false, { completed: 2, total: 2 })).toBe(true);
  });

  it('prompts: the instructions first, then the open tasks; unread messages open the prompt', () => {
    expect(firstPrompt('  build it \n', '/ws/.team/a-1')).toBe(
      'build it\n\nYour tasks are listed in /ws/.team/a-1/tasks.md. Run `orchestrator team task done <id>` as you finish each one.',
    );
    const later = continuePrompt([
      { id: 't1', status: 'completed', text: 'one' },
      { id: 't2', status: 'in_progress', text: 'two' },
    ]);
    expect(later).toContain('- t2 (in_progress): two');
    expect(later).not.toContain('t1');
    expect(continuePrompt([])).toContain('- (none listed)');
    const msg = { seq: 1, from: 'manager-1', text: 'hurry', at: 'now' };
    const withMsg = withMessages([msg], 'base');
    expect(withMsg.endsWith('\n\nbase')).toBe(true);
    expect(withMsg).toContain('hurry');
    expect(withMessages([], 'base')).toBe('base');
  });
});
