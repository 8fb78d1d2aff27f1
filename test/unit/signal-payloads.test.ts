/**
 * Every signal's payload schema (src/shared), which the workflows parse before acting on a signal:
 * anyone who can signal may send anything, and a handler that threw would fail its workflow task again
 * on every retry (a stalled run). Each schema must take what our own senders send and refuse the rest.
 */
import { describe, expect, it } from 'vitest';
import { createLedger, limitsFor } from '../../src/shared/budget';
import {
  AgentBudgetPausedSchema,
  MeterLimitsMessageSchema,
  type AgentBudgetPaused,
} from '../../src/shared/messages';
import {
  AgentProgressSchema,
  DeliveredMessageSchema,
  ReportStatusSchema,
  StopAgentRequestSchema,
  TeamAgentOutcomeSchema,
  type TeamAgentOutcome,
} from '../../src/shared/team';
import { formatZodIssues, zodIssueText } from '../../src/shared/zod-issues';

/** What no schema here may take. */
const GARBAGE: unknown[] = [null, 42, 'text', [], true, { nested: { deep: 'x'.repeat(10_000) } }];

describe('signal payload schemas', () => {
  it('budgetLimits: takes the limits a run sends (limitsFor), refuses negative, fractional or non-numeric limits', () => {
    const ledger = createLedger({
      run: { usd: 1.5, tokens: 100_000 },
      phases: { planning: { usd: 0.5 } },
      agents: { planning: { planner: { tokens: 20_000 } } },
    });
    const sent = limitsFor(ledger, 'planning', 'planner');
    expect(Object.keys(sent).sort()).toEqual(['agent', 'phase', 'run']);
    expect(MeterLimitsMessageSchema.parse(sent)).toEqual(sent);
    expect(MeterLimitsMessageSchema.parse({})).toEqual({});
    for (const bad of [
      ...GARBAGE,
      { run: { usd: 5 } },
      { run: { microUsd: -1 } },
      { run: { microUsd: 0.5 } },
      { phase: { tokens: 'lots' } },
      { agent: null },
    ]) {
      expect(MeterLimitsMessageSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it('agentBudgetPaused: takes an agent report, refuses missing fields and unknown levels or units', () => {
    const report: AgentBudgetPaused = {
      workflowId: 'run-1-development-dev',
      phase: 'development',
      agent: 'dev',
      reason: 'phase budget of $0.50 reached',
      level: 'phase',
      unit: 'usd',
    };
    expect(AgentBudgetPausedSchema.parse(report)).toEqual(report);
    for (const bad of [
      ...GARBAGE,
      {},
      { ...report, workflowId: '' },
      { ...report, level: 'team' },
      { ...report, unit: 'eur' },
      { ...report, reason: 'r'.repeat(5_000) },
    ]) {
      expect(AgentBudgetPausedSchema.safeParse(bad).success).toBe(false);
    }
  });

  it('agentProgress and agentEnded: take what agent workflows send, refuse what would corrupt the totals', () => {
    const progress = {
      agentId: 'software-engineer-1',
      state: 'running' as const,
      costUsd: 0.012345,
      turns: 3,
      tasks: { completed: 1, total: 4 },
      note: 'halfway',
    };
    expect(AgentProgressSchema.parse(progress)).toEqual(progress);
    expect(AgentProgressSchema.parse({ agentId: 'a-1' })).toEqual({ agentId: 'a-1' });
    const ended: TeamAgentOutcome = {
      agentId: 'software-engineer-1',
      state: 'failed',
      costUsd: 0,
      turns: 0,
      tasks: { completed: 0, total: 2 },
      error: 'tasks not completed after 2 round(s): 0/2 done',
      errorType: 'TasksNotCompleted',
      startedAt: '2026-12-01T10:00:00.000Z',
      completedAt: '2026-12-01T10:01:00.000Z',
    };
    expect(TeamAgentOutcomeSchema.parse(ended)).toEqual(ended);
    for (const bad of [
      ...GARBAGE,
      {},
      { agentId: 'a-1', costUsd: 'free' },
      { agentId: 'a-1', costUsd: -1 },
      { agentId: 'a-1', costUsd: Number.POSITIVE_INFINITY },
      { agentId: 'a-1', turns: 1.5 },
      { agentId: 'a-1', state: 'exploded' },
      { agentId: 'a-1', tasks: { completed: -1, total: 1 } },
    ]) {
      expect(AgentProgressSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
    for (const bad of [
      ...GARBAGE,
      { ...ended, state: 'running' },
      { ...ended, tasks: undefined },
      { ...ended, costUsd: Number.NaN },
    ]) {
      expect(TeamAgentOutcomeSchema.safeParse(bad).success).toBe(false);
    }
  });

  it("a team agent's deliverMessage, reportStatus and stopAgent", () => {
    expect(DeliveredMessageSchema.parse({ from: 'operator', text: 'hi' })).toEqual({
      from: 'operator',
      text: 'hi',
    });
    for (const bad of [
      ...GARBAGE,
      { from: 'operator' },
      { from: 'operator', text: '' },
      { from: 1, text: 'x' },
    ])
      expect(DeliveredMessageSchema.safeParse(bad).success).toBe(false);
    expect(ReportStatusSchema.parse({ text: 'done soon' })).toEqual({ text: 'done soon' });
    for (const bad of [...GARBAGE, {}, { text: 7 }])
      expect(ReportStatusSchema.safeParse(bad).success).toBe(false);
    // `temporal workflow signal --name stopAgent` without input sends nothing, or null: a stop all the same.
    for (const ok of [undefined, null, {}, { reason: 'enough' }])
      expect(StopAgentRequestSchema.safeParse(ok).success).toBe(true);
    for (const bad of [42, 'stop', [], { reason: { why: 1 } }])
      expect(StopAgentRequestSchema.safeParse(bad).success).toBe(false);
  });
});

describe('zod issue text', () => {
  it('names each issue by its path, indices in brackets, and the whole input by its root name', () => {
    const err = {
      issues: [
        { path: ['phases', 2, 'artifacts', 0], message: 'must be a relative path' },
        { path: [], message: 'Expected object, received null' },
      ],
    };
    expect(formatZodIssues(err)).toEqual([
      'phases[2].artifacts[0]: must be a relative path',
      'Expected object, received null',
    ]);
    expect(formatZodIssues(err, 'intake')).toEqual([
      'intake.phases[2].artifacts[0]: must be a relative path',
      'intake: Expected object, received null',
    ]);
    expect(zodIssueText(err, 'request')).toBe(
      'phases[2].artifacts[0]: must be a relative path; request: Expected object, received null',
    );
  });
});
