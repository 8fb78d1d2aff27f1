/**
 * The phase engine against the real dev server: six phases with checkpoints, rollback during a phase
 * (workspace restored byte for byte), the Temporal CLI alone driving signals and queries.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointsQuery, phaseResultsQuery, statusQuery } from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { forkRun, rollbackRun, startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { Gates, treeHash, waitFor } from '../harness/gates';
import { PHASES, sixPhaseSpec } from '../harness/specs';
import { createTestEnv, env, tempDir, type TestEnv } from '../harness/temporal';

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe('projectWorkflow', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it('runs six phases, takes CP1..CP6, and every manifest hash matches its file', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: sixPhaseSpec(gates),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const summary = (await handle.result()) as { state: string };
    expect(summary.state).toBe('completed');

    const cps = await handle.query(checkpointsQuery);
    expect(cps.map((c) => c.id)).toEqual(['CP1', 'CP2', 'CP3', 'CP4', 'CP5', 'CP6']);
    expect(cps.map((c) => c.label)).toEqual(PHASES.map((p) => `post-${p}`));
    for (const cp of cps) {
      const manifest = JSON.parse(fs.readFileSync(cp.manifestPath, 'utf8')) as {
        artifacts: { path: string; size: number; sha256: string }[];
      };
      expect(cp.manifestPath).toBe(
        path.join(t.config.outputsDir, input.runId, cp.phase, `manifest-${cp.id}.json`),
      );
      expect(manifest.artifacts.length).toBeGreaterThan(0);
      for (const a of manifest.artifacts) {
        // Later phases may change a file, so compare against the checkpoint's own phase output where stable.
        if (cp.phase === 'development' || !['plan.md'].includes(a.path)) {
          expect(a.sha256).toBe(sha256(path.join(workspace, a.path)));
          expect(a.size).toBe(fs.statSync(path.join(workspace, a.path)).size);
        }
      }
    }
    const results = await handle.query(phaseResultsQuery);
    expect(results.map((r) => [r.phase, r.status, r.attempt])).toEqual(
      PHASES.map((p) => [p, 'completed', 1]),
    );
    for (const r of results) {
      expect(r.duration_ms).toBeGreaterThanOrEqual(0);
      expect(r.outputRef).toMatch(/manifest-CP\d+\.json$/);
    }
    // Each script ran exactly once.
    for (const p of PHASES) expect(gates.count(p)).toBe(1);
    const runManifest = JSON.parse(
      fs.readFileSync(path.join(t.config.outputsDir, input.runId, 'manifest.json'), 'utf8'),
    ) as Record<string, unknown>;
    expect(runManifest).toBeTruthy();
  });

  it('rolls back to CP2 during phase 4: the workspace is restored byte for byte and phases 3.. run again', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: sixPhaseSpec(gates, ['data', 'development']),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);

    // Phase 3 is blocked before writing anything: the workspace is exactly CP2 now.
    await waitFor(
      async () =>
        (await handle.query(checkpointsQuery)).some((c) => c.id === 'CP2') && gates.count('data') === 1,
      'CP2',
    );
    const atCp2 = treeHash(workspace);
    expect(Object.keys(atCp2).sort()).toEqual(['ARCHITECTURE.md', 'plan.md', 'scratch.txt']);
    gates.open('data', 1);

    // Phase 4's agent is running (blocked at its gate): roll back while it runs.
    await waitFor(async () => {
      const s = await handle.query(statusQuery);
      return (
        s.currentPhase === 'development' &&
        s.agents.some((a) => a.phase === 'development' && a.state === 'running') &&
        gates.count('development') === 1
      );
    }, 'phase 4 running');
    const beforeRollback = treeHash(workspace);
    expect(beforeRollback['data/schema.sql']).toBeDefined();
    expect(beforeRollback['scratch.txt']).toBeUndefined();

    const r = await rollbackRun(t.client, input.runId, 'CP2', 'test: redo data');
    expect(r).toEqual({ checkpoint: 'CP2', resumesAt: 'data' });
    // Phase 3 (attempt 2) is blocked at its gate again, so nothing has touched the restored tree.
    await waitFor(() => gates.count('data') === 2, 'phase 3 rerun started');
    expect(treeHash(workspace)).toEqual(atCp2);

    gates.open('data', 2);
    gates.open('development', 2);
    const summary = (await handle.result()) as { state: string };
    expect(summary.state).toBe('completed');

    const results = await handle.query(phaseResultsQuery);
    expect(results.map((x) => `${x.phase}#${x.attempt}:${x.status}`)).toEqual([
      'planning#1:completed',
      'architecture#1:completed',
      'data#1:rolled_back',
      'development#1:rolled_back',
      'data#2:completed',
      'development#2:completed',
      'qa#1:completed',
      'documentation#1:completed',
    ]);
    const status: RunStatus = await handle.query(statusQuery);
    expect(status.rollbacks).toHaveLength(1);
    expect(status.rollbacks[0]).toMatchObject({
      to: 'CP2',
      reason: 'test: redo data',
      fromPhase: 'development',
    });
    expect(status.checkpoints.filter((c) => !c.rolledBack).map((c) => c.label)).toEqual(
      PHASES.map((p) => `post-${p}`),
    );
    expect(gates.count('planning')).toBe(1);
    expect(gates.count('architecture')).toBe(1);
    expect(gates.count('data')).toBe(2);
  });

  it('refuses a rollback to an unknown checkpoint with a clear message', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const input = await startRun(t.client, {
      spec: sixPhaseSpec(gates, ['architecture']),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('architecture') === 1, 'phase 2 running');
    await expect(rollbackRun(t.client, input.runId, 'CP9')).rejects.toThrow(
      /unknown checkpoint "CP9"; available: CP0, CP1/,
    );
    await expect(rollbackRun(t.client, input.runId, 'nonsense')).rejects.toThrow(
      /checkpoint: must be a checkpoint id like CP2/,
    );
    await t.client.workflow.getHandle(input.runId).terminate('test done');
  });

  it('fails a run started with a bad input, naming the field, instead of retrying forever', async () => {
    const handle = await t.client.workflow.start('projectWorkflow', {
      taskQueue: t.taskQueue,
      workflowId: `bad-input-${Date.now()}`,
      args: [
        {
          runId: 'x',
          spec: { project: { name: 'x' }, phases: [] },
          workspace: 'relative/ws',
          outputsDir: '/tmp',
        },
      ],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const message = String((err as WorkflowFailedError).cause?.message);
    expect(message).toMatch(/invalid projectWorkflow input: .*spec\.phases: must list at least one phase/);
    expect(message).toMatch(/workspace: must be an absolute path/);
  });

  it('takes signal `rollback` and query `status` from the Temporal CLI alone', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: sixPhaseSpec(gates, ['data']),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('data') === 1, 'phase 3 running');
    const cli = env('ORCH_TEST_TEMPORAL_CLI');
    const common = ['--address', t.config.temporal.address, '--workflow-id', input.runId];
    // Async exec: the worker runs in this process, so a blocking exec would stall it.
    const run = promisify(execFile);
    const q = JSON.parse(
      (await run(cli, ['workflow', 'query', ...common, '--name', 'status', '-o', 'json'])).stdout,
    ) as {
      queryResult: RunStatus[];
    };
    expect(q.queryResult[0]?.currentPhase).toBe('data');
    expect(q.queryResult[0]?.step).toBe('step 3/6');

    await run(cli, [
      'workflow',
      'signal',
      ...common,
      '--name',
      'rollback',
      '--input',
      '{"checkpoint":"CP1","reason":"from the temporal CLI"}',
    ]);
    await waitFor(() => gates.count('architecture') === 2, 'phase 2 runs again after the rollback');
    gates.open('data', 2);
    const summary = (await t.client.workflow.getHandle(input.runId).result()) as {
      state: string;
      rollbacks: { to: string }[];
    };
    expect(summary.state).toBe('completed');
    expect(summary.rollbacks.map((r) => r.to)).toEqual(['CP1']);
  });
});

describe('fork and long runs', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it('forks a run from CP2 into a new workspace that starts as an exact copy of CP2', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-');
    const parent = await startRun(t.client, {
      spec: sixPhaseSpec(gates, ['data']),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('data') === 1, 'parent blocked in phase 3');
    const atCp2 = treeHash(workspace);
    gates.open('data', 1);
    await t.client.workflow.getHandle(parent.runId).result();

    const forkWs = path.join(tempDir('orch-fork-'), 'ws');
    const fork = await forkRun(t.client, {
      runId: parent.runId,
      checkpoint: 'CP2',
      workspace: forkWs,
      taskQueue: t.taskQueue,
    });
    expect(fork.forkedFrom).toMatchObject({ runId: parent.runId, checkpoint: 'CP2', phaseIndex: 1 });
    // The fork's phase 3 waits at gate 2: its workspace is CP2 exactly, before any fork work.
    await waitFor(() => gates.count('data') === 2, 'fork phase 3 started');
    expect(treeHash(forkWs)).toEqual(atCp2);
    gates.open('data', 2);
    const summary = (await t.client.workflow.getHandle(fork.runId).result()) as {
      state: string;
      checkpoints: { id: string; label: string }[];
    };
    expect(summary.state).toBe('completed');
    expect(summary.checkpoints.map((c) => `${c.id}:${c.label}`)).toEqual([
      'CP2:post-architecture',
      'CP3:post-data',
      'CP4:post-development',
      'CP5:post-qa',
      'CP6:post-documentation',
    ]);
    const results = await t.client.workflow.getHandle(fork.runId).query(phaseResultsQuery);
    expect(results.map((r) => r.status)).toEqual([
      'inherited',
      'inherited',
      'completed',
      'completed',
      'completed',
      'completed',
    ]);
    // The parent's planning and architecture ran once; the fork did not run them.
    expect(gates.count('planning')).toBe(1);
    expect(gates.count('architecture')).toBe(1);
    await expect(
      forkRun(t.client, {
        runId: parent.runId,
        checkpoint: 'CP9',
        workspace: tempDir('orch-fork-'),
        taskQueue: t.taskQueue,
      }),
    ).rejects.toThrow(/has no checkpoint "CP9"; it has: CP0, CP1, CP2/);
  });

  it('keeps every execution of a 50-phase run far below the history limits (continue-as-new)', async () => {
    const spec = ProjectSpecSchema.parse({
      project: { name: 'fifty phases' },
      phases: Array.from({ length: 50 }, (_, i) => ({
        name: `p${i + 1}`,
        agents: [{ role: 'noop', backend: 'script', command: ['true'] }],
      })),
    });
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const summary = (await t.client.workflow.getHandle(input.runId).result()) as {
      state: string;
      checkpoints: unknown[];
    };
    expect(summary.state).toBe('completed');
    expect(summary.checkpoints).toHaveLength(50);
    const executions: { runId: string; historyLength: number; historySize: number }[] = [];
    for await (const wf of t.client.workflow.list({ query: `WorkflowId = '${input.runId}'` })) {
      executions.push({ runId: wf.runId, historyLength: wf.historyLength, historySize: wf.historySize ?? 0 });
    }
    expect(executions.length).toBeGreaterThanOrEqual(5);
    for (const e of executions) {
      // Temporal warns at 10k events / 10 MB and stops at 50k / 50 MB.
      expect(e.historyLength).toBeLessThan(500);
      expect(e.historySize).toBeLessThan(1_000_000);
    }
    const status = await t.client.workflow.getHandle(input.runId).query(statusQuery);
    expect(status.continuedAsNew).toBeGreaterThanOrEqual(4);
    // 50 phases, each a checkpoint: about a minute here, and over 180 s when the suite shares 2 cores.
  }, 600_000);
});
