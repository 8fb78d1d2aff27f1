/**
 * Crashes: a worker process SIGKILLed mid-phase, and the dev server stopped and restarted on the same
 * SQLite file. Runs complete; completed phases never run again (the scripts count their invocations).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { freePort, startDevServer } from '../../src/devserver';
import { startRun } from '../../src/runs';
import { loadConfig } from '../../config/env';
import { createLogger } from '../../src/logger';
import { createWorker } from '../../workers/worker';
import { Gates, waitFor, within } from '../harness/gates';
import {
  createTestEnv,
  env,
  tempDir,
  type TestEnv,
  spawnWorkerProcess,
  stopWorkers,
} from '../harness/temporal';
import {
  KILL_TEST_HEARTBEAT_S,
  scheduledHeartbeatTimeouts,
  sixPhaseSpec,
  withKillHeartbeat,
} from '../harness/specs';
import { processesMentioning } from '../harness/processes';
import { stuckReport } from '../harness/stuck';
import { ProjectSpecSchema } from '../../src/shared/spec';

/**
 * The gated scripts' own shells: each attempt of a script agent runs one, under its watchdog and (where
 * bubblewrap runs) two bwrap processes whose command lines repeat the script, so counting everything
 * that mentions a gate would count one attempt several times.
 */
function scriptShells(gateDir: string, phase: string): string[] {
  return processesMentioning(path.join(gateDir, `${phase}.gate-`)).filter((l) =>
    /^\d+ sh -c n=\$\(\(/.test(l),
  );
}

/** The processes that are `sleep <duration>` itself (as "pid command"). */
function sleeping(duration: string): string[] {
  return processesMentioning(`sleep ${duration}`).filter(
    (l) => l.endsWith(` sleep ${duration}`) && /^\d+ sleep /.test(l),
  );
}

describe('durability', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => t.close());

  it('survives a SIGKILLed worker mid-phase without re-running completed phases or leaving orphans', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const w1 = spawnWorkerProcess(t);
    // A 10 s heartbeat timeout: the killed turn is retried ~10 s after its last beat, not 30 s.
    const input = await startRun(t.client, {
      spec: withKillHeartbeat(sixPhaseSpec(gates, ['development'])),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('development') === 1, 'phase 4 running on worker 1', 90_000);
    await waitFor(() => scriptShells(gates.dir, 'development').length === 1, 'its script running');
    w1.kill('SIGKILL');
    const killedAt = Date.now();
    await new Promise((r) => w1.once('exit', r));
    // The orphaned attempt ends by itself (its watchdog sees its worker gone), before any retry.
    await waitFor(() => processesMentioning(gates.dir).length === 0, 'the orphaned attempt ended', 20_000);
    console.log(`orphan of the SIGKILLed worker ended ${Date.now() - killedAt} ms after the kill`);

    const w2 = spawnWorkerProcess(t);
    try {
      // The retry (after the heartbeat timeout) is the one live attempt.
      await waitFor(() => gates.count('development') === 2, 'phase 4 retried on worker 2', 90_000);
      await waitFor(() => scriptShells(gates.dir, 'development').length > 0, 'the retry running');
      expect(scriptShells(gates.dir, 'development')).toHaveLength(1);
      gates.open('development', 2);
      const summary = (await t.client.workflow.getHandle(input.runId).result()) as { state: string };
      expect(summary.state).toBe('completed');
      // Every turn was scheduled with the run's own heartbeat timeout.
      const beats = scheduledHeartbeatTimeouts(
        await t.client.workflow.getHandle(input.runId).fetchHistory(),
        'scriptTurn',
      );
      expect(beats.length).toBeGreaterThanOrEqual(6);
      expect(new Set(beats)).toEqual(new Set([KILL_TEST_HEARTBEAT_S * 1000]));
    } finally {
      w2.kill('SIGTERM');
      await new Promise((r) => w2.once('exit', r));
    }
    for (const p of ['planning', 'architecture', 'data', 'qa', 'documentation'])
      expect(gates.count(p)).toBe(1);
    expect(gates.count('development')).toBe(2);
    expect(processesMentioning(gates.dir)).toEqual([]);
  });

  it("ends the last attempt's process when a run fails, and the running one when a run is terminated", async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    // A unique, valid duration names each agent's processes among every other on the machine.
    const crashed = `300.${String(Date.now()).slice(-6)}`;
    const oneAgent = (name: string, command: string[]) =>
      ProjectSpecSchema.parse({
        project: { name },
        constraints: { agent_heartbeat_timeout_s: KILL_TEST_HEARTBEAT_S },
        phases: [
          {
            name: 'development',
            agents: [{ role: 'developer', backend: 'script', command, max_attempts: 1 }],
          },
        ],
      });
    // Its first invocation runs until its worker is SIGKILLed; the retry fails as the agent's own failure,
    // its only attempt, so the run fails while the first invocation would still be running.
    const failing = await startRun(t.client, {
      spec: oneAgent(
        'fails',
        gates.script('development', `if [ $n -eq 1 ]; then sleep ${crashed}; else exit 3; fi`, false),
      ),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const w1 = spawnWorkerProcess(t);
    // The `sleep` itself, not a process whose command line holds the script (the sandbox's and its
    // starter's do before the script has run): killed earlier, the first attempt may not have counted
    // itself, and the retry, counting 1, would sleep too.
    await waitFor(() => sleeping(crashed).length > 0, 'the first attempt running', 90_000);
    expect(gates.count('development')).toBe(1);
    const w1Gone = new Promise((r) => w1.once('exit', r));
    w1.kill('SIGKILL');
    await w1Gone;
    const w2 = spawnWorkerProcess(t);
    try {
      // The first attempt's heartbeat times out, then the retry runs on w2 and fails the run.
      const handle = t.client.workflow.getHandle(failing.runId);
      const failure = await within(
        handle.result().then(
          () => undefined,
          (e: unknown) => e as Error,
        ),
        120_000,
        () =>
          `the failing run's end (second worker ${w2.exitCode === null ? 'running' : `exited ${w2.exitCode}`})`,
      ).catch(async (err: unknown) => {
        throw new Error(`${(err as Error).message}\n${await stuckReport(t.client, failing.runId)}`);
      });
      expect(String((failure?.cause as Error | undefined)?.message)).toMatch(/script exited with code 3/);
      expect(gates.count('development')).toBe(2);
      // Nothing of either attempt is left, at the moment the run has failed.
      expect(processesMentioning(`sleep ${crashed}`)).toEqual([]);
      expect(processesMentioning(path.join(gates.dir, 'development.'))).toEqual([]);

      // Terminated: the workflow never runs again, so the activity learns it from its next heartbeat.
      const hung = `300.${String(Date.now() + 1).slice(-6)}`;
      const terminated = await startRun(t.client, {
        spec: oneAgent('terminated', ['sleep', hung]),
        workspace: tempDir('orch-ws-'),
        outputsDir: t.config.outputsDir,
        taskQueue: t.taskQueue,
      });
      await waitFor(() => sleeping(hung).length > 0, 'the agent running', 90_000);
      await t.client.workflow.getHandle(terminated.runId).terminate('test: a run ended from outside');
      const at = Date.now();
      await waitFor(() => processesMentioning(hung).length === 0, "the terminated run's agent ended", 30_000);
      console.log(`a terminated run's agent ended ${Date.now() - at} ms after the termination`);
    } finally {
      await stopWorkers([w2]);
    }
  });

  it('survives a dev server restart on the same SQLite file', async () => {
    const dir = tempDir('orch-restart-');
    const dbFile = path.join(dir, 'temporal.db');
    const port = await freePort();
    const cliPath = env('ORCH_TEST_TEMPORAL_CLI');
    let server = await startDevServer({
      cliPath,
      dbFile,
      port,
      headless: true,
      logFile: path.join(dir, 'server.log'),
    });
    const config = loadConfig({
      ...process.env,
      TEMPORAL_ADDRESS: server.address,
      ORCHESTRATOR_TASK_QUEUE: 'restart',
      ORCHESTRATOR_OUTPUTS_DIR: path.join(dir, 'outputs'),
      LOG_LEVEL: 'error',
    });
    const nativeConnection = await NativeConnection.connect({ address: server.address });
    const { worker } = await createWorker({
      config,
      logger: createLogger('error'),
      connection: nativeConnection,
      workflowBundle: { codePath: env('ORCH_TEST_WORKFLOW_BUNDLE') },
    });
    const running = worker.run();
    const gates = new Gates(path.join(dir, 'gates'));
    let connection = await Connection.connect({ address: server.address });
    let client = new Client({ connection });
    const input = await startRun(client, {
      spec: sixPhaseSpec(gates, ['data']),
      workspace: path.join(dir, 'ws'),
      outputsDir: config.outputsDir,
      taskQueue: 'restart',
    });
    await waitFor(() => gates.count('data') === 1, 'phase 3 running');
    await connection.close();

    await server.stop();
    server = await startDevServer({
      cliPath,
      dbFile,
      port,
      headless: true,
      logFile: path.join(dir, 'server.log'),
    });
    gates.open('data', 1);
    gates.open('data', 2);
    gates.open('data', 3);
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection });
    try {
      const summary = (await client.workflow.getHandle(input.runId).result()) as {
        state: string;
        checkpoints: unknown[];
      };
      expect(summary.state).toBe('completed');
      expect(summary.checkpoints).toHaveLength(6);
      expect(gates.count('planning')).toBe(1);
      expect(gates.count('architecture')).toBe(1);
    } finally {
      worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
      await server.stop();
    }
  });
});
