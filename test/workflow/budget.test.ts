/**
 * The budget ledger inside projectWorkflow, with script agents (they cost nothing, so these tests are about
 * the plumbing): an exhausted budget pauses before an agent starts and `raiseBudget` resumes the run; the
 * `fail` policy fails it naming the budget; bad requests are refused clearly; the CLI drives it all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEntrySchema, type AuditEntry } from '../../src/shared/audit';
import { auditQuery, budgetQuery, raiseBudgetUpdate } from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import { approveRun, queryStatus, raiseBudget, startRun } from '../../src/runs';
import { cliEnv, runCli } from '../harness/cli';
import { Gates, waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

function spec(
  gates: Gates,
  constraints: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name: 'budget test' },
    constraints,
    phases: [
      {
        name: 'planning',
        agents: [
          {
            role: 'architect',
            backend: 'script',
            command: gates.script('planning', 'echo plan > plan.md', false),
          },
        ],
        artifacts: [{ pattern: 'plan.md' }],
      },
      {
        name: 'development',
        agents: [
          {
            role: 'developer',
            backend: 'script',
            command: gates.script('development', 'echo code > code.txt', false),
            ...extra,
          },
        ],
        artifacts: [{ pattern: 'code.txt' }],
      },
    ],
  });
}

async function pausedStatus(t: TestEnv, runId: string): Promise<RunStatus> {
  return waitFor(
    async () => {
      const s = await queryStatus(t.client, runId);
      return s.state === 'paused' ? s : undefined;
    },
    `run ${runId} paused`,
    300_000,
  );
}

function auditFile(t: TestEnv, runId: string): AuditEntry[] {
  return fs
    .readFileSync(path.join(t.config.outputsDir, runId, 'audit.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => AuditEntrySchema.parse(JSON.parse(l)));
}

describe('budgets in projectWorkflow (script agents)', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it('a run budget of $0 pauses before the first agent; raiseBudget resumes it to completion', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const input = await startRun(t.client, {
      spec: spec(gates, { budget_usd: 0 }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const paused = await pausedStatus(t, input.runId);
    expect(paused.pausedReason).toMatch(/^run USD budget exhausted: limit \$0, \$0 spent/);
    expect(paused.pausedReason).toContain(`orchestrator budget set --run ${input.runId} --max-usd`);
    expect(paused.agents.map((a) => [a.id, a.state])).toEqual([['architect', 'pending']]);
    expect(gates.count('planning')).toBe(0);
    // The pause goes to disk while the run waits, not only at the end.
    await waitFor(
      () =>
        fs.existsSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl')) &&
        auditFile(t, input.runId).some((e) => e.kind === 'budget' && e.details.event === 'pause'),
      'the pause in audit.jsonl',
    );

    // A budget pause is not an approval: `approve` is refused.
    await expect(approveRun(t.client, input.runId, { note: 'go' })).rejects.toThrow(
      `approval refused: run ${input.runId} is not waiting for an approval (state: paused)`,
    );
    const raised = await raiseBudget(t.client, input.runId, {
      scope: { level: 'run' },
      usd: 1,
      actor: 'user:test',
    });
    expect(raised).toEqual({ scope: { level: 'run' }, limit: { usd: 1 }, wasPaused: true });
    const summary = (await handle.result()) as { state: string; budget: { usd: number } };
    expect(summary.state).toBe('completed');
    expect(gates.count('planning')).toBe(1);
    expect(gates.count('development')).toBe(1);

    const b = await handle.query(budgetQuery);
    expect(b.report.run.limit).toEqual({ usd: 1 });
    expect(b.ledger.reservations).toEqual({});
    const entries = await handle.query(auditQuery);
    const budgetEvents = entries.filter((e) => e.kind === 'budget').map((e) => e.details.event);
    expect(budgetEvents).toEqual(['reserve_refused', 'pause', 'raise', 'resume']);
    expect(entries.find((e) => e.details.event === 'raise')?.actor).toBe('user:test');
    expect(entries.filter((e) => e.kind === 'spawn').map((e) => e.details.reservation)).toEqual([
      `${input.runId}/planning/architect#1`,
      `${input.runId}/development/developer#1`,
    ]);
    // CP0 (the workspace before phase 1) is audited like the phases' checkpoints.
    expect(entries.filter((e) => e.kind === 'checkpoint').map((e) => e.details.id)).toEqual([
      'CP0',
      'CP1',
      'CP2',
    ]);
    // Everything was flushed before the run ended: the file holds exactly what the query shows, in order.
    const file = auditFile(t, input.runId);
    expect(file).toEqual(entries);
    expect(file.map((e) => e.seq)).toEqual(file.map((_, i) => i + 1));
  });

  it('an agent budget stops only that agent; on_budget_exceeded: fail fails the run naming the budget', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const input = await startRun(t.client, {
      spec: spec(gates, { on_budget_exceeded: 'fail' }, { budget_usd: 0 }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const err = await t.client.workflow
      .getHandle(input.runId)
      .result()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as { message: string; type?: string };
    expect(cause.type).toBe('BudgetExceeded');
    expect(cause.message).toMatch(
      /^budget exceeded: agent "developer" in phase "development" USD budget exhausted/,
    );
    expect(gates.count('planning')).toBe(1);
    expect(gates.count('development')).toBe(0);
    const runEvents = auditFile(t, input.runId).filter((e) => e.kind === 'run');
    expect(runEvents.at(-1)?.details).toMatchObject({ event: 'failed', type: 'BudgetExceeded' });
  });

  it('refuses bad raiseBudget requests with messages that say what is wrong', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const input = await startRun(t.client, {
      spec: spec(gates, { budget_tokens: 0 }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const paused = await pausedStatus(t, input.runId);
    expect(paused.pausedReason).toMatch(/^run token budget exhausted/);
    expect(paused.pausedReason).toContain('--max-tokens <n>');

    await expect(
      raiseBudget(t.client, input.runId, { scope: { level: 'phase', phase: 'nope' }, usd: 1 }),
    ).rejects.toThrow(
      `budget change refused: run ${input.runId} has no phase "nope"; phases: planning, development`,
    );
    await expect(
      raiseBudget(t.client, input.runId, {
        scope: { level: 'agent', phase: 'development', agent: 'ghost' },
        tokens: 5,
      }),
    ).rejects.toThrow('phase "development" has no agent "ghost"; agents: developer');
    await expect(raiseBudget(t.client, input.runId, { scope: { level: 'run' }, usd: -1 })).rejects.toThrow(
      'invalid budget change: usd: must be a number ≥ 0',
    );
    // Straight to the workflow, past the client-side check: its validator refuses too.
    const direct = await t.client.workflow
      .getHandle(input.runId)
      .executeUpdate(raiseBudgetUpdate, { args: [{ scope: { level: 'agent', phase: 'planning' } } as never] })
      .catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((direct as WorkflowUpdateFailedError).cause?.message).toMatch(
      /^invalid raiseBudget request: .*scope\.agent: is required for level "agent"/,
    );

    expect((await queryStatus(t.client, input.runId)).state).toBe('paused');
    await raiseBudget(t.client, input.runId, { scope: { level: 'run' }, tokens: 1_000_000 });
    expect(((await t.client.workflow.getHandle(input.runId).result()) as { state: string }).state).toBe(
      'completed',
    );
  });

  it('the CLI: budget status, set (by agent id alone), report; clear errors for bad input', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const input = await startRun(t.client, {
      spec: spec(gates, { budget_usd: 5 }, { budget_usd: 0, budget_tokens: 100 }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await pausedStatus(t, input.runId);
    const env = cliEnv(t);

    const [status, table] = await Promise.all([
      runCli(['budget', 'status', input.runId, '--json'], env),
      runCli(['budget', 'status', input.runId], env),
    ]);
    expect(status.code, status.stderr).toBe(0);
    const b = JSON.parse(status.stdout) as {
      state: string;
      pausedReason: string;
      report: { agents: unknown[] };
    };
    expect(b.state).toBe('paused');
    expect(b.pausedReason).toMatch(/^agent "developer" in phase "development" USD budget exhausted/);
    expect(b.report.agents).toEqual([
      expect.objectContaining({ phase: 'development', agent: 'developer', limit: { usd: 0, tokens: 100 } }),
    ]);
    expect(table.stdout).toContain('agent development/developer');
    expect(table.stdout).toContain('USD budget exhausted');

    const [both, neither, nan, missing, ghost] = await Promise.all([
      runCli(['budget', 'set', '--run', input.runId, '--max-usd', '1', '--max-tokens', '5'], env),
      runCli(['budget', 'set', '--run', input.runId], env),
      runCli(['budget', 'set', '--run', input.runId, '--max-usd', 'lots'], env),
      runCli(['budget', 'set', '--run', 'no-such-run', '--max-usd', '1'], env),
      runCli(['budget', 'set', '--run', input.runId, '--max-usd', '1', '--agent', 'ghost'], env),
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --max-usd or --max-tokens, not both');
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('give the new limit: --max-usd <usd> or --max-tokens <n>');
    expect(nan.code).not.toBe(0);
    expect(nan.stderr).toContain('must be a non-negative number of US dollars, e.g. 2.50 (got "lots")');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no run with id "no-such-run"');
    expect(ghost.stderr).toContain(
      `run ${input.runId} has no agent "ghost"; agents: planning/architect, development/developer`,
    );

    const set = await runCli(
      ['budget', 'set', '--run', input.runId, '--max-usd', '2', '--agent', 'developer'],
      env,
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(
      'agent development/developer budget is now $2.00, 100 tokens (the paused run re-checks',
    );
    expect(((await t.client.workflow.getHandle(input.runId).result()) as { state: string }).state).toBe(
      'completed',
    );

    const [report, tableReport, badFormat, audit] = await Promise.all([
      runCli(['budget', 'report', input.runId, '--format', 'json'], env),
      runCli(['budget', 'report', input.runId], env),
      runCli(['budget', 'report', input.runId, '--format', 'xml'], env),
      runCli(['governance', 'audit', '--run', input.runId, '--kind', 'budget'], env),
    ]);
    expect(report.code, report.stderr).toBe(0);
    const r = JSON.parse(report.stdout) as {
      run: { limit: unknown };
      agents: { agent: string; limit: unknown }[];
    };
    expect(r.run.limit).toEqual({ usd: 5 });
    expect(r.agents).toEqual([
      expect.objectContaining({ agent: 'developer', limit: { usd: 2, tokens: 100 } }),
    ]);
    for (const section of ['Run', 'Phases', 'Agents', 'Models'])
      expect(tableReport.stdout).toContain(section);
    expect(badFormat.code).not.toBe(0);
    expect(badFormat.stderr).toContain('Allowed choices are table, json');

    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toMatch(/budget\s+event=raise/);
    expect(audit.stdout).toMatch(/operator\s+budget/);
  });

  it('the ledger and the audit trail survive continue-as-new', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const phases = Array.from({ length: 12 }, (_, i) => ({
      name: `p${i + 1}`,
      agents: [
        {
          role: 'worker',
          backend: 'script',
          command: gates.script(`p${i + 1}`, `echo ${i} > f${i + 1}.txt`, false),
          // The last phase's agent has nothing to spend: it pauses in the second execution.
          ...(i === 11 ? { budget_usd: 0 } : {}),
        },
      ],
      artifacts: [{ pattern: `f${i + 1}.txt` }],
    }));
    const input = await startRun(t.client, {
      spec: ProjectSpecSchema.parse({
        project: { name: 'long budget' },
        constraints: { budget_tokens: 1000 },
        phases,
      }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    // Raised in the first execution, still in force in the second.
    await raiseBudget(t.client, input.runId, { scope: { level: 'run' }, tokens: 5000 });
    const paused = await pausedStatus(t, input.runId);
    expect(paused.continuedAsNew).toBe(1);
    expect(paused.pausedReason).toMatch(/^agent "worker" in phase "p12" USD budget exhausted/);
    const handle = t.client.workflow.getHandle(input.runId);
    const b = await handle.query(budgetQuery);
    expect(b.report.run.limit).toEqual({ tokens: 5000 });
    expect(b.report.agents).toEqual([
      expect.objectContaining({ phase: 'p12', agent: 'worker', limit: { usd: 0 } }),
    ]);
    // The carry keeps the chain's head, not its entries: after continue-as-new the query holds this
    // execution's entries, numbered on from where the last one stopped; audit.jsonl has every one.
    const entries = await handle.query(auditQuery);
    const first = entries[0]?.seq ?? 0;
    expect(first).toBeGreaterThan(1);
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => first + i));
    expect(
      auditFile(t, input.runId).some((e) => e.kind === 'run' && e.details.event === 'continued_as_new'),
    ).toBe(true);

    await raiseBudget(t.client, input.runId, {
      scope: { level: 'agent', phase: 'p12', agent: 'worker' },
      usd: 1,
    });
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const file = auditFile(t, input.runId);
    expect(file.map((e) => e.seq)).toEqual(file.map((_, i) => i + 1));
    // CP0 and one per phase.
    expect(file.filter((e) => e.kind === 'checkpoint')).toHaveLength(13);
    expect(file.filter((e) => e.kind === 'budget').map((e) => e.details.event)).toEqual([
      'raise',
      'reserve_refused',
      'pause',
      'raise',
      'resume',
    ]);
  });
});
