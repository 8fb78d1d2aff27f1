import { describe, expect, it } from 'vitest';
import type { RunStatus } from '../../src/shared/run';
import {
  attributeChanges,
  runAttributes,
  runDetails,
  stepOf,
  teamAgentAttributes,
} from '../../src/shared/visibility';

const ALL = new Set([
  'OrchestratorProject',
  'OrchestratorClient',
  'OrchestratorPhase',
  'OrchestratorState',
  'OrchestratorStep',
  'OrchestratorCostUsd',
  'OrchestratorCheckpoint',
  'OrchestratorRole',
  'OrchestratorRun',
]);

function status(over: Partial<RunStatus> = {}): RunStatus {
  return {
    runId: 'run-1',
    project: 'forecast',
    state: 'running',
    currentPhase: 'development',
    step: 'step 4/6',
    phases: [],
    agents: [
      { id: 'dev-1', role: 'developer', phase: 'development', workflowId: 'w', state: 'running' },
      { id: 'plan-1', role: 'planner', phase: 'planning', workflowId: 'w2', state: 'completed' },
    ],
    checkpoints: [
      {
        id: 'CP1',
        label: 'post-planning',
        phase: 'planning',
        phaseIndex: 0,
        commit: 'c1',
        manifestPath: 'm1',
        createdAt: 't',
        runId: 'run-1',
      },
      {
        id: 'CP2',
        label: 'post-architecture',
        phase: 'architecture',
        phaseIndex: 1,
        commit: 'c2',
        manifestPath: 'm2',
        createdAt: 't',
        runId: 'run-1',
      },
      {
        id: 'CP3',
        label: 'post-data',
        phase: 'data',
        phaseIndex: 2,
        commit: 'c3',
        manifestPath: 'm3',
        createdAt: 't',
        runId: 'run-1',
        rolledBack: true,
      },
    ],
    rollbacks: [],
    totals: { usage: { input_tokens: 0, output_tokens: 0 }, costUsd: 0.0123456789, tokens: 4321 },
    workspace: '/ws',
    outputsDir: '/out',
    continuedAsNew: 0,
    ...over,
  } as RunStatus;
}

describe('search attributes of a run', () => {
  it('come from its status: phase, step number, cost to the micro-dollar, the checkpoint in force', () => {
    expect(runAttributes(status(), 'acme-corp')).toEqual({
      project: 'forecast',
      client: 'acme-corp',
      phase: 'development',
      state: 'running',
      step: 4,
      costUsd: 0.012346,
      checkpoint: 'CP2',
    });
  });

  it('upsert only what changed, only what the namespace registered, and never clear a value', () => {
    const first = attributeChanges(runAttributes(status()), {}, ALL);
    expect(first.map((u) => u.key.name).sort()).toEqual(
      [
        'OrchestratorCheckpoint',
        'OrchestratorCostUsd',
        'OrchestratorPhase',
        'OrchestratorProject',
        'OrchestratorState',
        'OrchestratorStep',
      ].sort(),
    );
    expect(first.find((u) => u.key.name === 'OrchestratorStep')).toEqual({
      key: { name: 'OrchestratorStep', type: 'INT' },
      value: 4,
    });
    expect(first.find((u) => u.key.name === 'OrchestratorCostUsd')?.key.type).toBe('DOUBLE');

    const before = runAttributes(status());
    const ended = runAttributes(status({ state: 'completed', currentPhase: undefined }));
    expect(attributeChanges(ended, before, ALL)).toEqual([
      { key: { name: 'OrchestratorState', type: 'KEYWORD' }, value: 'completed' },
    ]);
    expect(attributeChanges(runAttributes(status()), {}, new Set(['OrchestratorPhase']))).toEqual([
      { key: { name: 'OrchestratorPhase', type: 'KEYWORD' }, value: 'development' },
    ]);
    expect(attributeChanges(runAttributes(status()), {}, new Set())).toEqual([]);
  });

  it('of a team agent name its role and its team run', () => {
    const a = teamAgentAttributes(
      {
        agentId: 'eng-1',
        name: 'eng',
        role: 'software-engineer',
        state: 'running',
        round: 1,
        turns: 2,
        costUsd: 0.5,
        tasks: { total: 0, completed: 0 },
        dir: '/d',
      },
      'team-9',
    );
    expect(a).toEqual({ role: 'software-engineer', run: 'team-9', state: 'running', costUsd: 0.5 });
  });

  it('read the step from the status text, and none as 0', () => {
    expect(stepOf('-')).toEqual({ n: 0, of: 0 });
    expect(stepOf('step 1/6')).toEqual({ n: 1, of: 6 });
    expect(stepOf('step 12/30')).toEqual({ n: 12, of: 30 });
  });
});

describe('current details of a run', () => {
  it('say the step, phase, running agents, cost against budget, the checkpoint in force and a pause', () => {
    const text = runDetails(status({ state: 'paused', pausedReason: 'run budget $0.01 reached' }), 0.5);
    expect(text).toContain('**Step 4 of 6 · development** · paused');
    expect(text).toContain('Agents: dev-1 (developer)');
    expect(text).not.toContain('plan-1');
    expect(text).toContain('Cost: $0.0123 of $0.5000 budget · 4321 tokens');
    expect(text).toContain('Last checkpoint: CP2 (post-architecture)');
    expect(text).toContain('Paused: run budget $0.01 reached');
  });
});
