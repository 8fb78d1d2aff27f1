/**
 * The continue-as-new carry does not grow with the phases (issue #11, deliver 8): after continue-as-new
 * the carry holds run-length forms, not a row per phase, and checkpoints without their commits; yet a
 * rollback to a checkpoint of an earlier execution and a fork from one still restore it exactly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointsQuery, statusQuery } from '../../src/shared/messages';
import { forkRun, queryCheckpoints, rollbackRun, startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { Gates, waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

/** Files a workspace holds (without the orchestrator's own folders). */
function files(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f !== '.orchestrator' && f !== '.git')
    .sort();
}

describe('bounded carry', { timeout: 900_000 }, () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it('after continue-as-new: run-length carry; rollback and fork to a checkpoint of the first execution restore it', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-');
    // 12 phases: the run continues as new after the 10th. Phase i writes f<i>; the last waits at its gate.
    const spec = ProjectSpecSchema.parse({
      project: { name: 'bounded carry' },
      phases: Array.from({ length: 12 }, (_, i) => ({
        name: `p${String(i + 1).padStart(2, '0')}`,
        agents: [
          {
            role: 'noop',
            backend: 'script',
            command: i === 11 ? gates.script('last', `echo ${i} > f${i}`) : ['sh', '-c', `echo ${i} > f${i}`],
          },
        ],
      })),
    });
    const input = await startRun(t.client, {
      spec,
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    await waitFor(() => gates.count('last') === 1, 'phase 12 running', 600_000);
    const status = await handle.query(statusQuery);
    expect(status.continuedAsNew).toBe(1);

    // The second execution's input: the carry has one run of phases and one of checkpoints, no commits.
    const executions: string[] = [];
    for await (const wf of t.client.workflow.list({ query: `WorkflowId = '${input.runId}'` }))
      executions.push(wf.runId);
    expect(executions).toHaveLength(2);
    const starts = await Promise.all(
      executions.map(
        async (id) => (await t.client.workflow.getHandle(input.runId, id).fetchHistory()).events?.[0],
      ),
    );
    const payloads = starts
      .map((e) => e?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [])
      .find((p) => p.length > 1)!;
    const carry = defaultPayloadConverter.fromPayload<Record<string, unknown>>(payloads[1]!);
    expect(carry.phaseRuns).toEqual([[0, 10, 1, 'completed', 1]]);
    expect(carry.checkpointRuns).toEqual([[1, 0, 10]]);
    expect(carry.phaseRows).toBeUndefined();
    expect(carry.liveCheckpoints).toBeUndefined();

    // The workflow shows CP1..CP10 without commits; the CLI's view fills them in from the manifests.
    const raw = await handle.query(checkpointsQuery);
    expect(raw.map((c) => c.id)).toEqual(Array.from({ length: 11 }, (_, i) => `CP${i + 1}`));
    expect(raw[0]!.commit).toBe('');
    const cps = await queryCheckpoints(t.client, input.runId);
    for (const c of cps) {
      expect(c.commit).toMatch(/^[0-9a-f]{40}$/);
      if (c.id !== 'CP11') expect(JSON.stringify(carry)).not.toContain(c.commit);
    }

    // Rollback to CP9 (taken in the first execution): the stray file goes, phases 10.. run again.
    fs.writeFileSync(path.join(workspace, 'stray'), 'not in any checkpoint');
    await rollbackRun(t.client, input.runId, 'CP9', 'test: rollback across continue-as-new');
    await waitFor(() => gates.count('last') === 2, 'phase 12 again', 300_000);
    expect(files(workspace)).toEqual(Array.from({ length: 11 }, (_, i) => `f${i}`).sort());
    gates.open('last', 2);
    const summary = (await handle.result()) as { state: string };
    expect(summary.state).toBe('completed');
    const after = await queryCheckpoints(t.client, input.runId);
    expect(after.filter((c) => !c.rolledBack).map((c) => c.id)).toEqual([
      ...Array.from({ length: 9 }, (_, i) => `CP${i + 1}`),
      'CP12',
      'CP13',
      'CP14',
    ]);

    // A fork from CP3, also taken in the first execution, of the completed run: f0..f2 exactly.
    const forkWs = path.join(tempDir('orch-fork-'), 'ws');
    gates.open('last', 3);
    const fork = await forkRun(t.client, {
      runId: input.runId,
      checkpoint: 'CP3',
      workspace: forkWs,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('last') === 3, 'fork reached phase 12', 600_000);
    expect(((await t.client.workflow.getHandle(fork.runId).result()) as { state: string }).state).toBe(
      'completed',
    );
    expect(files(forkWs)).toEqual(Array.from({ length: 12 }, (_, i) => `f${i}`).sort());
    // The fork's own rows: phases 4.. ran in it, 1..3 came from CP3.
    expect((await t.client.workflow.getHandle(fork.runId).query(statusQuery)).state).toBe('completed');
    expect(fs.readFileSync(path.join(forkWs, 'f2'), 'utf8')).toBe('2\n');
  });
});
