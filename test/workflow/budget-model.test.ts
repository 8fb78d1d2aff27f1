/**
 * Budgets with real spend: `cli` agents (the real `claude` CLI) against the local Messages-API server,
 * whose `@cost <n>` directive makes a turn expensive. An agent with a 1-cent budget pauses the run;
 * `raiseBudget` resumes it; the ledger's totals equal what the server served, priced with config/pricing.
 * A worker SIGKILLed between an agent's reservation and its charge neither loses nor repeats the charge.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import type { Ledger } from '../../src/shared/budget';
import { agentWorkflowId } from '../../workflows/agent';
import {
  agentBudgetLimitsSignal,
  auditQuery,
  budgetQuery,
  phaseResultsQuery,
} from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import { queryStatus, raiseBudget, startRun } from '../../src/runs';
import { waitFor } from '../harness/gates';
import { ledgerSpend, modelWorkerEnv, servedSince } from '../harness/money';
import { createModelTestEnv, type ModelTestEnv } from '../harness/model-env';
import { createTestEnv, tempDir, type TestEnv, spawnWorkerProcess } from '../harness/temporal';
import { withKillHeartbeat } from '../harness/specs';

/** What the server served from request index `since` (its own tally), with USD for readable checks. */
function served(server: ModelServer, since: number) {
  const s = servedSince(server, since);
  return { ...s, usd: s.microUsd / 1e6 };
}

const ledgerMicro = (l: Ledger): number => ledgerSpend(l).microUsd;

function cliSpec(prompt: string, agent: Record<string, unknown>, name: string): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name },
    constraints: { budget_usd: 10 },
    phases: [
      {
        name: 'planning',
        agents: [{ role: 'architect', backend: 'script', command: ['sh', '-c', 'echo "# plan" > plan.md'] }],
        artifacts: [{ pattern: 'plan.md' }],
      },
      {
        name: 'development',
        agents: [
          {
            role: 'developer',
            backend: 'cli',
            model: 'opus',
            permission_mode: 'acceptEdits',
            prompt,
            ...agent,
          },
        ],
        artifacts: [{ pattern: 'out.txt' }],
      },
    ],
  });
}

describe('budgets with cli agents and the local model server', () => {
  let t: TestEnv;
  let server: ModelServer;
  let env: ModelTestEnv | undefined;
  beforeAll(async () => {
    env = await createModelTestEnv();
    ({ t, server } = env);
  });
  afterAll(async () => env?.close());

  it('an agent with a 1-cent budget and a costly turn pauses the run; raiseBudget resumes it; the ledger matches the server, priced', async () => {
    const since = server.requests.length;
    const input = await startRun(t.client, {
      spec: cliSpec(
        'Write the output file.\n@cost 5000\n@write out.txt done',
        { budget_usd: 0.01 },
        'costly',
      ),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const paused = await waitFor(
      async () => {
        const s: RunStatus = await queryStatus(t.client, input.runId);
        return s.state === 'paused' ? s : undefined;
      },
      'paused by the agent budget',
      120_000,
    );
    expect(paused.pausedReason).toMatch(
      /^agent "developer" in phase "development" USD budget exhausted: limit \$0\.01, \$0\.1\d*/,
    );
    expect(paused.pausedReason).toContain(
      `orchestrator budget set --run ${input.runId} --max-usd <usd> --phase development --agent developer`,
    );
    // The agent was started once, with what was left recorded on the spawn.
    const spawns = (await handle.query(auditQuery)).filter(
      (e) => e.kind === 'spawn' && e.details.agent === 'developer',
    );
    expect(spawns.map((e) => e.details.maxBudgetUsd)).toEqual([0.01]);
    // While it waits, the ledger already holds exactly what it was served.
    const before = await handle.query(budgetQuery);
    const agentRow = before.report.agents.find((a) => a.agent === 'developer')!;
    expect(agentRow.usd).toBeGreaterThan(0.01);
    expect(agentRow.limit).toEqual({ usd: 0.01 });
    expect(ledgerMicro(before.ledger)).toBe(served(server, since).microUsd);

    // The agent itself (anything that reaches the server) signals its own workflow that it has no limits.
    // That only wakes it: its turn asks the run for its limits, is refused again before any request goes
    // upstream, and the run pauses again. Nothing more is served; only raiseBudget (audited) lifts it.
    const servedAtPause = servedSince(server, since);
    const pausesOf = async () =>
      (await handle.query(auditQuery)).filter((e) => e.kind === 'budget' && e.details.event === 'pause')
        .length;
    const pausesBefore = await pausesOf();
    await t.client.workflow
      .getHandle(agentWorkflowId(input.runId, 'development', 'developer'))
      .signal(agentBudgetLimitsSignal, {});
    await waitFor(
      async () => ((await pausesOf()) > pausesBefore ? true : undefined),
      'the forged limits refused again, the run paused again',
      120_000,
    );
    expect((await queryStatus(t.client, input.runId)).state).toBe('paused');
    expect(servedSince(server, since)).toEqual(servedAtPause);
    expect(ledgerMicro((await handle.query(budgetQuery)).ledger)).toBe(servedAtPause.microUsd);

    await raiseBudget(t.client, input.runId, {
      scope: { level: 'agent', phase: 'development', agent: 'developer' },
      usd: 1,
    });
    expect(((await handle.result()) as { state: string }).state).toBe('completed');

    const after = await handle.query(budgetQuery);
    const s = served(server, since);
    // The same agent start continued: one reservation key, charged while paused and at the end.
    expect(new Set(Object.keys(after.ledger.charged).map((k) => k.replace(/@.*$/, '')))).toEqual(
      new Set([`${input.runId}/development/developer#1`]),
    );
    expect(ledgerMicro(after.ledger)).toBe(s.microUsd);
    expect(after.report.run.tokens).toBe(s.tokens);
    expect(after.ledger.reservations).toEqual({});
    const audit = await handle.query(auditQuery);
    expect(audit.filter((e) => e.kind === 'spawn' && e.details.agent === 'developer')).toHaveLength(1);
    // Resumed in its own session: every line of the transcript names one session id, and the resumed
    // turn told the model why it was interrupted.
    const transcript = fs.readFileSync(
      path.join(t.config.outputsDir, input.runId, 'agents', 'development-developer.jsonl'),
      'utf8',
    );
    const sessions = new Set([...transcript.matchAll(/"session_id":"([^"]+)"/g)].map((m) => m[1]));
    expect(sessions.size).toBe(1);
    expect(server.requests.slice(since).some((r) => r.lastUserText.includes('the budget ran out'))).toBe(
      true,
    );
    const results = await handle.query(phaseResultsQuery);
    const dev = results.find((r) => r.phase === 'development')!;
    expect(dev.agents.map((a) => a.status)).toEqual(['completed']);
    expect(Math.round(dev.costUsd * 1e6)).toBe(s.microUsd);
  });

  it('the report breaks spend down per model', async () => {
    const since = server.requests.length;
    const input = await startRun(t.client, {
      spec: cliSpec('@write out.txt cheap', { model: 'claude-haiku-4-5' }, 'per-model'),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const { report } = await handle.query(budgetQuery);
    const s = served(server, since);
    const models = new Set(
      server.requests
        .slice(since)
        .filter((r) => r.status === 200)
        .map((r) => r.responseModel),
    );
    expect(report.models.map((m) => m.model).sort()).toEqual([...models].sort());
    expect(Math.round(report.models.reduce((n, m) => n + m.usd, 0) * 1e6)).toBe(s.microUsd);
    expect(report.phases.find((p) => p.phase === 'development')?.usd).toBe(s.usd);
  });
});

describe('a worker SIGKILLed between reserve and charge', () => {
  let t: TestEnv;
  let server: ModelServer;
  beforeAll(async () => {
    server = await startModelServer();
    t = await createTestEnv();
  });
  afterAll(async () => {
    await t.close();
    await server.close();
  });

  it('charges the agent exactly once, and for everything the server served', async () => {
    const home = tempDir('orch-home-');
    const w1 = spawnWorkerProcess(t, modelWorkerEnv(server, home));
    const input = await startRun(t.client, {
      // Its killed turn is retried ~10 s after its last beat instead of 30 s (test/harness/specs).
      spec: withKillHeartbeat(
        cliSpec('@cost 3000\n@sleep 4000\n@write out.txt survived', { budget_usd: 5 }, 'killed'),
      ),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    // Reserved (the spawn is recorded) and the agent's turn is in flight at the server: not charged yet.
    await waitFor(
      () => server.requests.some((r) => r.firstUserText.includes('out.txt survived') && r.status === 0),
      'the agent turn in flight',
      120_000,
    );
    const mid = await handle.query(budgetQuery);
    expect(Object.keys(mid.ledger.reservations)).toEqual([`${input.runId}/development/developer#1`]);
    expect(Object.keys(mid.ledger.charged).some((k) => k.includes('developer'))).toBe(false);
    w1.kill('SIGKILL');
    await new Promise((r) => w1.once('exit', r));

    const w2 = spawnWorkerProcess(t, modelWorkerEnv(server, home));
    try {
      expect(((await handle.result()) as { state: string }).state).toBe('completed');
      const after = await handle.query(budgetQuery);
      const charged = Object.keys(after.ledger.charged).filter((k) => k.includes('/development/developer#'));
      // One reservation, charged once (one key per model the agent used, all under attempt #1).
      expect(new Set(charged.map((k) => k.replace(/@.*$/, '')))).toEqual(
        new Set([`${input.runId}/development/developer#1`]),
      );
      expect(after.ledger.reservations).toEqual({});
      const charges = (await handle.query(auditQuery)).filter(
        (e) => e.kind === 'budget' && e.details.event === 'charge',
      );
      expect(charges.map((e) => e.details.agent)).toEqual(['developer']);
      // Nothing lost: the ledger holds everything the server served for this run, priced.
      const s = served(server, 0);
      expect(s.usd).toBeGreaterThan(0.05);
      expect(ledgerMicro(after.ledger)).toBe(s.microUsd);
      // The file agrees with the query: one charge line.
      const file = fs
        .readFileSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"event":"charge"'));
      expect(file).toHaveLength(1);
    } finally {
      w2.kill('SIGTERM');
      await new Promise((r) => w2.once('exit', r));
    }
    // A SIGKILL costs a heartbeat timeout and a resumed CLI: slow on a loaded machine.
  }, 360_000);
});
