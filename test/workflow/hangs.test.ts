/**
 * Agents end when they should: a script that leaves `sleep 300` in the background completes its phase
 * when the script ends (the turn's own time, from history, under 5 s; the sleep is ended and named in
 * the agent's log, with or without bubblewrap), and a `claude` agent whose model stalls is ended
 * at its timeout_s and retried as a hang (AgentHung), leaving no process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelServer } from '../../src/modelserver';
import { startRun } from '../../src/runs';
import type { ProjectSummary } from '../../workflows/project';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { phaseResultsQuery } from '../../src/shared/messages';
import { waitFor } from '../harness/gates';
import { processesIn, processesMentioning } from '../harness/processes';
import { createModelTestEnv, type ModelTestEnv } from '../harness/model-env';
import { tempDir, type TestEnv } from '../harness/temporal';

describe('agents end when they should', () => {
  let t: TestEnv;
  let server: ModelServer;
  let env: ModelTestEnv | undefined;
  beforeAll(async () => {
    env = await createModelTestEnv();
    ({ t, server } = env);
  });
  afterAll(async () => env?.close());

  it('a script that backgrounds `sleep 300` completes its phase when the script ends; the sleep is ended', async () => {
    const ws = tempDir('orch-ws-');
    // A unique, valid duration names this sleep among every other process on the machine.
    const seconds = `300.${String(Date.now()).slice(-6)}`;
    const spec = ProjectSpecSchema.parse({
      project: { name: 'background child' },
      phases: [
        {
          name: 'planning',
          agents: [
            {
              role: 'architect',
              backend: 'script',
              // The sleep inherits the output pipe: before, the phase waited for it until timeout_s.
              command: ['sh', '-c', `sleep ${seconds} & echo plan > plan.md`],
              timeout_s: 600,
            },
          ],
          artifacts: [{ pattern: 'plan.md' }],
        },
      ],
    });
    const input = await startRun(t.client, {
      spec,
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const summary = (await t.client.workflow.getHandle(input.runId).result()) as ProjectSummary;
    expect(summary.state).toBe('completed');
    const phases = await t.client.workflow.getHandle(input.runId).query(phaseResultsQuery);
    expect(phases[0]?.status).toBe('completed');
    // The phase's own time, from the server's history: the script turn from scheduled to completed.
    // Before, it lasted until the sleep ended or timeout_s (600 s); the bound is far from both.
    // The script's turn is an activity of the run itself (patch script-agent-activity).
    const history = await t.client.workflow.getHandle(input.runId).fetchHistory();
    const events = history.events ?? [];
    const at = (e: (typeof events)[number]) =>
      Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    const scheduled = events.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'scriptTurn',
    );
    const completed = events.filter(
      (e) =>
        scheduled &&
        Number(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? -1) === Number(scheduled.eventId),
    );
    expect(scheduled).toBeDefined();
    expect(completed).toHaveLength(1);
    expect(at(completed[0]!) - at(scheduled!)).toBeLessThan(5_000);
    expect(processesMentioning(`sleep ${seconds}`)).toEqual([]);
    expect(processesIn(ws)).toEqual([]);
    // The group kill is named in the agent's log, with or without a sandbox (inside bubblewrap the
    // reaper names it, without one the worker does), and only the script's own leftover is named.
    const log = fs.readFileSync(
      path.join(t.config.outputsDir, input.runId, 'agents', 'planning-architect.log'),
      'utf8',
    );
    expect(log).toMatch(
      new RegExp(
        // Named as it was when found: `sleep …`, or the script's forked shell if it had not exec'd yet.
        `\\[orchestrator\\] ended 1 background process\\(es\\) left by the script: \\d+ (sh -c )?sleep ${seconds.replace('.', '\\.')}\\b`,
      ),
    );
  });

  it('a cli agent with timeout_s 10 against a model that stalls 120 s is ended at about 10 s, retried as a hang, and leaves no process', async () => {
    const ws = tempDir('orch-ws-');
    const spec = ProjectSpecSchema.parse({
      project: { name: 'stalled model' },
      phases: [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'cli',
              model: 'opus',
              permission_mode: 'acceptEdits',
              prompt: 'Write the output file.\n@write out.txt done',
              timeout_s: 10,
              max_attempts: 2,
            },
          ],
          artifacts: [{ pattern: 'out.txt' }],
        },
      ],
    });
    const since = server.requests.length;
    // Every request of both attempts stalls for 120 s (more stalls than the attempts can use).
    server.injectFaults(...Array.from({ length: 6 }, () => ({ status: 200, stallMs: 120_000 })));
    const started = Date.now();
    const input = await startRun(t.client, {
      spec,
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const failure = await handle.result().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    server.clearFaults();
    expect(String((failure?.cause as Error | undefined)?.message)).toMatch(
      /agent developer: AgentHung: claude hung: the turn outlived its timeout_s \(10 s\)/,
    );
    // Both attempts ran about 10 s (plus the kill grace), nowhere near the model's 120 s stall.
    expect(Date.now() - started).toBeLessThan(100_000);
    const history = await t.client.workflow.getHandle(`${input.runId}/development/developer`).fetchHistory();
    const events = history.events ?? [];
    const startedAt = events
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6));
    const failed = events.filter((e) => e.activityTaskFailedEventAttributes);
    expect(
      failed.map((e) => e.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo?.type),
    ).toEqual(['AgentHung', 'AgentHung']);
    const durations = failed.map(
      (e, i) =>
        Number(e.eventTime?.seconds ?? 0) * 1000 +
        Math.floor((e.eventTime?.nanos ?? 0) / 1e6) -
        startedAt[i]!,
    );
    for (const d of durations) {
      expect(d).toBeGreaterThanOrEqual(9_500);
      expect(d).toBeLessThan(30_000);
    }
    // The model answered nothing, and nothing of either attempt is left running.
    expect(server.requests.slice(since).filter((r) => r.status === 200)).toEqual([]);
    await waitFor(() => processesIn(ws).length === 0, 'no process left in the workspace', 10_000);
  });
});
