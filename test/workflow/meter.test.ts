/**
 * Exact money under faults (issue #9), against the local model server and its own tally, on the real dev
 * server with the real `claude` CLI and the real SDK: every model request goes through the worker's
 * metering gateway, and the ledger equals what the server served, to the micro-dollar, however the agent
 * ended. Budgets bind per request: an api agent stops at the response that crosses its limit and the same
 * agent continues after a raise; a phase token limit pauses cli and api agents; parallel agents share a run
 * limit; a served model other than the requested one is what is charged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelServer } from '../../src/modelserver';
import { auditQuery, budgetQuery } from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import type { ProjectSpec } from '../../src/shared/spec';
import { queryStatus, raiseBudget, rollbackRun, startRun } from '../../src/runs';
import { waitFor } from '../harness/gates';
import { ledgerSpend, servedSince } from '../harness/money';
import { modelSpec } from '../harness/specs';
import { createModelTestEnv, type ModelTestEnv } from '../harness/model-env';
import { tempDir, type TestEnv } from '../harness/temporal';

const spec = modelSpec;

describe('metered money', () => {
  let t: TestEnv;
  let server: ModelServer;
  let env: ModelTestEnv | undefined;
  beforeAll(async () => {
    env = await createModelTestEnv({
      serveModel: { 'claude-haiku-4-5': 'claude-opus-5-5', 'claude-sonnet-4-6': 'claude-opus-9-9' },
    });
    ({ t, server } = env);
  });
  afterAll(async () => env?.close());

  async function start(s: ProjectSpec) {
    const input = await startRun(t.client, {
      spec: s,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    return { input, handle: t.client.workflow.getHandle(input.runId) };
  }

  const pausedRun = (runId: string, what: string) =>
    waitFor(
      async () => {
        const s: RunStatus = await queryStatus(t.client, runId);
        return s.state === 'paused' ? s : undefined;
      },
      what,
      150_000,
    );

  it('an api agent with budget_usd 0.01 stops at the first response crossing it; a raise lets the same agent continue', async () => {
    const since = server.requests.length;
    const { input, handle } = await start(
      spec('api-budget', [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'api',
              budget_usd: 0.01,
              prompt: 'Write two files.\n@cost 2000\n@write a.txt one\n@write b.txt two',
            },
          ],
        },
      ]),
    );
    const paused = await pausedRun(input.runId, 'paused by the api agent budget');
    expect(paused.pausedReason).toMatch(
      /^agent "developer" in phase "development" USD budget exhausted: limit \$0\.01, \$0\.0\d+ spent/,
    );
    // Exactly one response was served: the one that crossed the limit; the next request never left.
    const atPause = servedSince(server, since);
    expect(atPause.requests).toBe(1);
    expect(atPause.microUsd).toBeGreaterThan(10_000);
    expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(atPause.microUsd);

    await raiseBudget(t.client, input.runId, {
      scope: { level: 'agent', phase: 'development', agent: 'developer' },
      usd: 1,
    });
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const s = servedSince(server, since);
    expect(s.requests).toBeGreaterThan(1);
    expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(s.microUsd);
    const spawns = (await handle.query(auditQuery)).filter(
      (e) => e.kind === 'spawn' && e.details.agent === 'developer',
    );
    expect(spawns).toHaveLength(1);
    expect(fs.readFileSync(path.join(input.workspace, 'b.txt'), 'utf8')).toContain('two');
  });

  it('a phase limit of 500 tokens pauses at the first response crossing it, for an api and a cli agent', async () => {
    const since = server.requests.length;
    const { input, handle } = await start(
      spec('phase-tokens', [
        {
          name: 'development',
          budget: { tokens: 500 },
          agents: [{ role: 'developer', backend: 'api', prompt: '@write a.txt api' }],
        },
        {
          name: 'qa',
          budget: { tokens: 500 },
          agents: [
            { role: 'qa', backend: 'cli', permission_mode: 'acceptEdits', prompt: '@write q.txt cli' },
          ],
        },
      ]),
    );
    for (const phase of ['development', 'qa']) {
      const paused = await pausedRun(input.runId, `paused by the ${phase} token limit`);
      expect(paused.pausedReason).toMatch(
        new RegExp(`^phase "${phase}" token budget exhausted: limit 500 tokens`),
      );
      const { report, ledger } = await handle.query(budgetQuery);
      const row = report.phases.find((p) => p.phase === phase)!;
      expect(row.tokens).toBeGreaterThanOrEqual(500);
      expect(ledgerSpend(ledger).microUsd).toBe(servedSince(server, since).microUsd);
      await raiseBudget(t.client, input.runId, { scope: { level: 'phase', phase }, tokens: 10_000_000 });
    }
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const s = servedSince(server, since);
    const { ledger, report } = await handle.query(budgetQuery);
    expect(ledgerSpend(ledger).microUsd).toBe(s.microUsd);
    expect(report.run.tokens).toBe(s.tokens);
  });

  it('charges the served model, not the requested one (cli and api), and flags an unknown one', async () => {
    const since = server.requests.length;
    const { handle } = await start(
      spec('served-model', [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'cli',
              model: 'claude-haiku-4-5',
              permission_mode: 'acceptEdits',
              prompt: '@write c.txt cli',
            },
            { role: 'reviewer', backend: 'api', model: 'claude-sonnet-4-6', prompt: '@write d.txt api' },
          ],
        },
      ]),
    );
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const s = servedSince(server, since);
    const { ledger, report } = await handle.query(budgetQuery);
    expect(ledgerSpend(ledger)).toEqual({ microUsd: s.microUsd, models: s.models });
    const charged = report.models.map((m) => m.model);
    expect(charged).toContain('claude-opus-5-5');
    expect(charged).toContain('claude-opus-9-9');
    expect(charged).not.toContain('claude-haiku-4-5');
    expect(charged).not.toContain('claude-sonnet-4-6');
    expect(report.models.find((m) => m.model === 'claude-opus-9-9')?.pricedAs).toBe('claude-opus-5');
    const flagged = (await handle.query(auditQuery)).filter(
      (e) => e.kind === 'budget' && e.details.event === 'charge' && e.details.unknownModels,
    );
    expect(flagged.map((e) => e.details.unknownModels)).toEqual([
      [{ model: 'claude-opus-9-9', pricedAs: 'claude-opus-5' }],
    ]);
  });

  it('a run cancelled during a cli turn is charged exactly what was served', async () => {
    const since = server.requests.length;
    const { handle } = await start(
      spec('cancelled', [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'cli',
              permission_mode: 'acceptEdits',
              prompt: '@cost 800\n@write a.txt first\n@sleep 20000\n@write out.txt cancelled-late',
            },
          ],
        },
      ]),
    );
    await waitFor(
      () =>
        server.requests
          .slice(since)
          .some(
            (r) =>
              r.firstUserText.includes('cancelled-late') &&
              r.status === 0 &&
              r.receivedAt > 0 &&
              servedSince(server, since).requests >= 1,
          ),
      'the agent turn in flight after it was served something',
      150_000,
    );
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    const s = servedSince(server, since);
    expect(s.microUsd).toBeGreaterThan(0);
    expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(s.microUsd);
  });

  it('a rollback during a cli turn keeps the rolled-back spend, and the ledger equals the tally', async () => {
    const since = server.requests.length;
    const { input, handle } = await start(
      spec('rolled-back', [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'cli',
              permission_mode: 'acceptEdits',
              prompt: '@cost 800\n@write a.txt first\n@sleep 6000\n@write out.txt rollback-late',
            },
          ],
        },
      ]),
    );
    await waitFor(
      () =>
        server.requests
          .slice(since)
          .some(
            (r) =>
              r.firstUserText.includes('rollback-late') &&
              r.status === 0 &&
              servedSince(server, since).requests >= 1,
          ),
      'the agent turn in flight',
      150_000,
    );
    const mid = servedSince(server, since).microUsd;
    await rollbackRun(t.client, input.runId, 'CP1', 'test');
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const s = servedSince(server, since);
    expect(s.microUsd).toBeGreaterThan(mid);
    const { ledger } = await handle.query(budgetQuery);
    expect(ledgerSpend(ledger).microUsd).toBe(s.microUsd);
    const keys = new Set(Object.keys(ledger.charged).map((k) => k.replace(/@.*$/, '')));
    expect(keys).toEqual(
      new Set([`${input.runId}/development/developer#1`, `${input.runId}/development/developer#2`]),
    );
  });

  for (const n of [2, 4]) {
    it(`${n} parallel agents under a $0.05 run budget spend at most $0.05 plus one response each`, async () => {
      const since = server.requests.length;
      const agents = Array.from({ length: n }, (_, i) => ({
        id: `dev${i + 1}`,
        role: 'developer',
        backend: 'api',
        prompt: `Work.\n@cost 1200\n@write a${i}.txt x\n@cost 1200\n@write b${i}.txt y\n@cost 1200\n@write c${i}.txt z\n@cost 1200\n@write d${i}.txt w`,
      }));
      const { input, handle } = await start(
        spec(`parallel-${n}`, [{ name: 'development', agents }], { budget_usd: 0.05 }),
      );
      const paused = await pausedRun(input.runId, 'paused by the run budget');
      expect(paused.pausedReason).toMatch(/run USD budget exhausted: limit \$0\.05/);
      // Let every agent reach its refusal before the figures are read.
      await waitFor(
        async () =>
          (await queryStatus(t.client, input.runId)).pausedReason?.split('; raise it with').length ===
            n + 1 || undefined,
        'every agent paused',
        60_000,
      ).catch(() => undefined);
      const s = servedSince(server, since);
      const oneEach = [...s.responses]
        .sort((a, b) => b - a)
        .slice(0, n)
        .reduce((a, b) => a + b, 0);
      expect(s.microUsd).toBeLessThanOrEqual(50_000 + oneEach);
      expect(s.microUsd).toBeGreaterThanOrEqual(50_000);
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow();
      expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(
        servedSince(server, since).microUsd,
      );
    });
  }
});
