/**
 * Runs are readable with no worker: a closed run answers `run status`, `checkpoint list|show` and
 * `run fork` from what it recorded, and a running run without a worker gets a one-line error naming
 * its task queue, instead of a query that hangs until the server gives up (~35 s).
 */
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRun, RunUnreadableError } from '../../src/run-record';
import { queryCheckpoints, queryStatus, startRun } from '../../src/runs';
import { statusQuery } from '../../src/shared/messages';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const BIN = path.resolve(import.meta.dirname, '../../bin/orchestrator.js');
/** Far below the ~35 s a query waits for an absent worker: a hang detector, not a speed target. */
const ANSWERS_WITHOUT_HANGING_MS = 12_000;

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
});
afterAll(async () => t?.close());

const spec = ProjectSpecSchema.parse({
  project: { name: 'readable' },
  phases: ['one', 'two'].map((name) => ({
    name,
    agents: [{ role: 'noop', backend: 'script', command: ['sh', '-c', `echo ${name} > ${name}.txt`] }],
  })),
});

function cli(args: string[], taskQueue = t.taskQueue, extra: Record<string, string> = {}, timeout = 60_000) {
  return execa(process.execPath, [BIN, ...args], {
    reject: false,
    stdin: 'ignore',
    timeout,
    env: {
      TEMPORAL_ADDRESS: t.config.temporal.address,
      ORCHESTRATOR_TASK_QUEUE: taskQueue,
      LOG_LEVEL: 'warn',
      NO_COLOR: '1',
      ...extra,
    },
  });
}

/** Wall time of a CLI command, process start included, with its result. */
async function timed(args: string[], extra: Record<string, string>) {
  const began = performance.now();
  const r = await cli(args, t.taskQueue, extra);
  return { ...r, ms: Math.round(performance.now() - began) };
}

describe('runs are readable with no worker', () => {
  it('a finished run answers status, checkpoints and show from its record once its worker is gone', async () => {
    const { worker, running } = await t.startWorker();
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await t.client.workflow.getHandle(input.runId).result();
    worker.shutdown();
    await running;

    const began = Date.now();
    const status = await queryStatus(t.client, input.runId);
    expect(Date.now() - began).toBeLessThan(ANSWERS_WITHOUT_HANGING_MS);
    expect(status).toMatchObject({ runId: input.runId, project: 'readable', state: 'completed' });
    expect(status.phases.map((p) => [p.name, p.checkpoint])).toEqual([
      ['one', 'CP1'],
      ['two', 'CP2'],
    ]);
    expect((await queryCheckpoints(t.client, input.runId)).map((c) => c.id)).toEqual(['CP1', 'CP2']);

    const shown = await cli(['run', 'status', input.runId]);
    expect(shown.stderr).toBe('');
    expect(shown.stdout).toContain('completed');
    const listed = await cli(['checkpoint', 'list', input.runId, '--json']);
    expect(listed.stderr).toBe('');
    // CP0 (the workspace before phase 1) and one per phase.
    expect(JSON.parse(listed.stdout)).toHaveLength(3);
    const cp = await cli(['checkpoint', 'show', input.runId, 'CP2', '--json']);
    expect(JSON.parse(cp.stdout)).toMatchObject({
      id: 'CP2',
      phase: 'two',
      manifest: { phase: 'two', checkpoint: 'CP2' },
    });
    // run list passes a visibility query through, with a state filter; a bad query is a usage error.
    const mine = await cli([
      'run',
      'list',
      '--state',
      'completed',
      '--query',
      `WorkflowId = '${input.runId}'`,
      '--json',
    ]);
    expect(
      (JSON.parse(mine.stdout) as { runId: string; state: string }[]).map((r) => [r.runId, r.state]),
    ).toEqual([[input.runId, 'completed']]);
    const none = await cli([
      'run',
      'list',
      '--state',
      'running',
      '--query',
      `WorkflowId = '${input.runId}'`,
      '--json',
    ]);
    expect(JSON.parse(none.stdout)).toEqual([]);
    const bad = await cli(['run', 'list', '--query', 'NoSuchField = 1']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^orchestrator: --query "NoSuchField = 1": .*NoSuchField/);

    // `results` answers from the record too (the manifest's phases), with no worker.
    const results = await cli(['results', input.runId, '--json']);
    expect(results.exitCode, results.stderr).toBe(0);
    expect((JSON.parse(results.stdout) as { phase: string }[]).map((r) => r.phase)).toEqual(['one', 'two']);
  });

  it('a finished --rehearse run answers run status once the rehearsal (its worker) has exited', async ({
    annotate,
  }) => {
    // Issue 15: the rehearsal's worker serves a task queue of its own and leaves with the CLI; a query
    // would wait on that queue until the server gives up (~35 s). The run is read from its record instead.
    const extra = {
      ORCHESTRATOR_OUTPUTS_DIR: tempDir('orch-rehearse-out-'),
      ORCHESTRATOR_HOME: tempDir('orch-rehearse-home-'),
    };
    const intake = path.resolve(import.meta.dirname, '../../examples/minimal.yaml');
    const workspace = tempDir('orch-rehearse-ws-');
    const started = await cli(
      ['run', 'start', '--intake', intake, '--workspace', workspace, '--rehearse', '--json'],
      t.taskQueue,
      extra,
      300_000,
    );
    expect(started.exitCode, started.stderr).toBe(0);
    const final = JSON.parse(started.stdout) as { runId: string; state: string };
    expect(final.state).toBe('completed');
    // The rehearsal's queue is private and nobody else polls it: the CLI's own queue is another.
    const queue = (await t.client.workflow.getHandle(final.runId).describe()).taskQueue;
    expect(queue).toMatch(/^rehearse-/);
    expect(queue).not.toBe(t.taskQueue);

    // The CLI's start-up alone, measured in the same run, is the floor `run status` stands on.
    const floor = await timed(['--version'], extra);
    expect(floor.exitCode).toBe(0);
    const status = await timed(['run', 'status', final.runId], extra);
    expect(status.stderr).toBe('');
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toContain(final.runId);
    expect(status.stdout).toContain('completed');
    const json = await timed(['run', 'status', final.runId, '--json'], extra);
    expect(JSON.parse(json.stdout)).toMatchObject({ runId: final.runId, state: 'completed' });
    expect((JSON.parse(json.stdout) as { phases: { name: string }[] }).phases.map((p) => p.name)).toEqual([
      'planning',
      'development',
    ]);
    const checkpoints = await timed(['checkpoint', 'list', final.runId, '--json'], extra);
    expect(checkpoints.stderr).toBe('');
    expect((JSON.parse(checkpoints.stdout) as { id: string }[]).map((c) => c.id)).toEqual([
      'CP0',
      'CP1',
      'CP2',
    ]);
    // The figure the issue asks about (under 2 s) is printed, not asserted: a loaded machine says nothing
    // about this code. The assertion only tells a read apart from a query waiting for the server's deadline.
    const figure = `run status of a finished --rehearse run: ${status.ms} ms (--json ${json.ms} ms, checkpoint list ${checkpoints.ms} ms; orchestrator --version ${floor.ms} ms)`;
    await annotate(figure);
    process.stderr.write(`${figure}\n`);
    expect(Math.max(status.ms, json.ms, checkpoints.ms)).toBeLessThan(ANSWERS_WITHOUT_HANGING_MS);
  });

  it('a closed run whose record has nothing to show gets a second, longer try for a slow worker', async () => {
    const first = await t.startWorker();
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    await handle.result();
    first.worker.shutdown();
    await first.running;
    // The server still lists the stopped worker (this live process) as a poller, so the first, short query
    // finds nobody; a worker that starts after it (a slow one, as far as the reader can tell) answers the
    // second. A record with nothing to show is what a failed team leaves (its result is a failure).
    const late = new Promise((r) => setTimeout(r, 2_500)).then(() => t.startWorker());
    const began = Date.now();
    const status = await readRun(
      t.client,
      input.runId,
      () => handle.query(statusQuery),
      () => undefined,
    );
    const tookMs = Date.now() - began;
    expect(status).toMatchObject({ runId: input.runId, state: 'completed' });
    // Answered by the late worker, after the first try's deadline had passed.
    expect(tookMs).toBeGreaterThan(2_500);
    const { worker, running } = await late;
    worker.shutdown();
    await running;
  });

  it('a running run without a worker: one line naming its task queue', async () => {
    const queue = `nobody-${Date.now()}`;
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: queue,
    });
    try {
      await expect(queryStatus(t.client, input.runId)).rejects.toBeInstanceOf(RunUnreadableError);
      const shown = await cli(['run', 'status', input.runId], queue);
      expect(shown.exitCode).toBe(1);
      expect(shown.stderr.trim()).toBe(
        `orchestrator: run ${input.runId} is running but no worker polls its task queue "${queue}": start one with \`orchestrator worker --task-queue ${queue}\``,
      );
    } finally {
      await t.client.workflow.getHandle(input.runId).terminate('test over');
    }
  });

  it('run cancel ends a running run as cancelled, and says so when it has ended already', async () => {
    const { worker, running } = await t.startWorker();
    try {
      const input = await startRun(t.client, {
        spec: ProjectSpecSchema.parse({
          project: { name: 'cancel me' },
          phases: [
            { name: 'long', agents: [{ role: 'sleeper', backend: 'script', command: ['sleep', '300'] }] },
          ],
        }),
        workspace: tempDir('orch-ws-'),
        outputsDir: t.config.outputsDir,
        taskQueue: t.taskQueue,
      });
      const cancelled = await cli(['run', 'cancel', input.runId, '--wait']);
      expect(cancelled.stderr).toBe('');
      expect(cancelled.stdout).toBe(`${input.runId} cancelled`);
      const again = await cli(['run', 'cancel', input.runId]);
      expect(again.exitCode).toBe(1);
      expect(again.stderr.trim()).toBe(`orchestrator: run ${input.runId} has already ended (cancelled)`);
    } finally {
      worker.shutdown();
      await running;
    }
  });
});
