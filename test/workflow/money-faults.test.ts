/**
 * Exact money when the worker dies mid-turn (issue #9): a worker process SIGKILLed while its `claude` is
 * in the middle of a turn, with the real CLI, the real dev server and the local model server. The ledger
 * must equal the server's own tally (`GET /_tally`) to the micro-dollar.
 *
 * An orphan normally ends within a second, by its watchdog. To see what an orphan that outlives its worker
 * does (a frozen watchdog), these cases SIGSTOP the dead worker's watchdogs: then either the orphan is
 * still running when the retry starts and the retry's sweep kills it, or it finishes its turn first. Its
 * gateway died with its worker, so whatever it asks for after the kill never reaches the model.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { budgetQuery } from '../../src/shared/messages';
import { startRun } from '../../src/runs';
import { waitFor } from '../harness/gates';
import { ledgerSpend, modelWorkerEnv, tallyMicroUsd } from '../harness/money';
import { pidsOf, processesMentioning, processesWithEnv, signalEach } from '../harness/processes';
import { SESSION_MARKER_ENV } from '../../activities/cli/process';
import { leaseDir } from '../../activities/watchdog';
import { GATEWAY_CLIENT_KEY } from '../../src/meter/gateway';
import { KILL_TEST_HEARTBEAT_S, modelSpec } from '../harness/specs';
import { createTestEnv, spawnWorkerProcess, tempDir, type TestEnv } from '../harness/temporal';

async function stop(w: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (w.exitCode !== null || w.signalCode !== null) return;
  const exited = new Promise((r) => w.once('exit', r));
  w.kill(signal);
  await exited;
}

/** Collects a worker's log lines (pino JSON on stdout/stderr) for assertions. */
function logLines(w: ChildProcess): string[] {
  const lines: string[] = [];
  for (const s of [w.stdout, w.stderr]) s?.on('data', (c: string | Buffer) => lines.push(String(c)));
  return lines;
}

/** The worker's real API key: only its metering gateway may hold it, never an agent process. */
const KEY = `sk-ant-test-${randomBytes(12).toString('hex')}`;

describe('a worker SIGKILLed mid cli turn', () => {
  let t: TestEnv;
  let server: ModelServer;
  let home: string;
  const workers: ChildProcess[] = [];
  /** Watchdogs the cases froze: killed at the end of each case (they are the test's doing). */
  let frozen: number[] = [];
  beforeAll(async () => {
    // The server accepts only this key: a run that completes shows the gateway sent it upstream.
    server = await startModelServer({ apiKey: KEY });
    t = await createTestEnv();
    home = tempDir('orch-home-');
  });
  afterEach(() => {
    signalEach(frozen, 'SIGKILL');
    frozen = [];
  });
  afterAll(async () => {
    for (const w of workers) await stop(w, 'SIGKILL');
    await t.close();
    await server.close();
  });

  function worker(): ChildProcess {
    const w = spawnWorkerProcess(t, modelWorkerEnv(server, home, KEY));
    workers.push(w);
    return w;
  }
  /** The worker that is up: a case kills it and starts its successor, which the next case kills. */
  const live = (): ChildProcess =>
    workers.find((w) => w.exitCode === null && w.signalCode === null) ?? worker();

  /** Starts a one-cli-agent run whose prompt is `lines`; the agent may write files and run commands. */
  async function start(name: string, lines: string[]) {
    const workspace = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: modelSpec(
        name,
        [
          {
            name: 'development',
            agents: [
              {
                role: 'developer',
                backend: 'cli',
                permission_mode: 'acceptEdits',
                allowed_tools: ['Bash', 'Write'],
                prompt: lines.join('\n'),
              },
            ],
          },
          // Killed turns are retried ~10 s after their last beat instead of 30 s (test/harness/specs).
        ],
        { agent_heartbeat_timeout_s: KILL_TEST_HEARTBEAT_S },
      ),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    return { input, workspace, handle: t.client.workflow.getHandle(input.runId) };
  }

  /** SIGSTOPs the watchdogs of worker `w` (found by its lease files), then SIGKILLs the worker. */
  async function killWithFrozenWatchdog(w: ChildProcess): Promise<void> {
    const watchdogs = pidsOf(processesMentioning(`${path.basename(leaseDir())}/${w.pid}-`));
    expect(watchdogs.length).toBeGreaterThan(0);
    signalEach(watchdogs, 'SIGSTOP');
    frozen.push(...watchdogs);
    await stop(w, 'SIGKILL');
  }

  /** Live processes of the agent's sandbox (bwrap names the workspace), not counting its frozen watchdog. */
  const orphan = (workspace: string) =>
    processesMentioning(workspace).filter((l) => !l.includes('orchestrator-watchdog'));

  it('with the orphan still running when the retry starts: the sweep kills it, and the ledger equals the tally', async () => {
    const before = await tallyMicroUsd(server);
    const mark = `orphan-${randomBytes(4).toString('hex')}`;
    const w1 = live();
    const { workspace, handle } = await start('sigkill-orphan-swept', [
      'Work through the steps.',
      '@cost 800',
      '@write a.txt first',
      // Long only the first time: the retry resumes past it. `woke` would show the orphan outlived its sweep.
      `@bash test -f slept || { touch slept; sleep 45; touch woke; } # ${mark}`,
      '@cost 800',
      '@write out.txt done',
    ]);
    await waitFor(() => processesMentioning(mark).length > 0, 'the agent in its long command', 150_000);
    const servedBeforeKill = (await tallyMicroUsd(server)) - before;
    expect(servedBeforeKill).toBeGreaterThan(0);
    await killWithFrozenWatchdog(w1);

    const w2 = worker();
    const log = logLines(w2);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');

    // The retry found the orphan still running and killed it before starting its own `claude`.
    const swept = log
      .join('')
      .split('\n')
      .filter((l) => l.includes('ended processes of an earlier attempt before starting'))
      .map((l) => (JSON.parse(l) as { killed: number[] }).killed);
    expect(swept).toHaveLength(1);
    expect(swept[0]!.length).toBeGreaterThan(0);
    expect(processesMentioning(mark)).toEqual([]);
    expect(orphan(workspace)).toEqual([]);
    expect(fs.existsSync(path.join(workspace, 'woke'))).toBe(false);
    expect(fs.readFileSync(path.join(workspace, 'out.txt'), 'utf8')).toBe('done');
    const served = (await tallyMicroUsd(server)) - before;
    expect(served).toBeGreaterThan(servedBeforeKill);
    expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(served);
  }, 240_000);

  it('with the orphan finishing its turn first: it spends nothing more, and the ledger equals the tally', async () => {
    const before = await tallyMicroUsd(server);
    const mark = `orphan-${randomBytes(4).toString('hex')}`;
    const w1 = live();
    const { workspace, handle } = await start('sigkill-orphan-finishes', [
      'Work through the steps.',
      '@cost 800',
      '@write a.txt first',
      `@bash sleep 3 # ${mark}`,
      '@cost 800',
      '@write b.txt second',
      '@write out.txt done',
    ]);
    await waitFor(() => processesMentioning(mark).length > 0, 'the agent in its command', 150_000);
    await killWithFrozenWatchdog(w1);
    const requestsAtKill = server.requests.length;
    const servedAtKill = (await tallyMicroUsd(server)) - before;
    expect(servedAtKill).toBeGreaterThan(0);

    // The orphan ends its turn by itself: its next model request finds its gateway gone.
    await waitFor(() => orphan(workspace).length === 0, 'the orphan ended its turn', 60_000);
    expect(server.requests.length).toBe(requestsAtKill);
    expect(fs.existsSync(path.join(workspace, 'b.txt'))).toBe(false);

    worker();
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    expect(fs.readFileSync(path.join(workspace, 'b.txt'), 'utf8')).toBe('second');
    const served = (await tallyMicroUsd(server)) - before;
    expect(served).toBeGreaterThan(servedAtKill);
    expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(served);
  }, 240_000);

  it('the API key reaches only the gateway: the claude process and its tools hold a stand-in', async () => {
    const before = await tallyMicroUsd(server);
    const mark = `keyless-${randomBytes(4).toString('hex')}`;
    live();
    const { workspace, handle } = await start('keyless-agent', [
      'Show the environment.',
      `@bash env > seen-env.txt; sleep 3 # ${mark}`,
      '@write out.txt done',
    ]);
    await waitFor(() => processesMentioning(mark).length > 0, 'the agent in its command', 150_000);
    // Every process of every claude session on this host (this one's among them): none holds the key.
    const agents = processesWithEnv(SESSION_MARKER_ENV);
    const mine = pidsOf(processesMentioning(mark));
    expect(agents.some((p) => mine.includes(p.pid))).toBe(true);
    for (const p of agents) {
      expect(Object.values(p.env).join('\n')).not.toContain(KEY);
      if (mine.includes(p.pid)) {
        expect(p.env.ANTHROPIC_API_KEY).toBe(GATEWAY_CLIENT_KEY);
        expect(p.env.ANTHROPIC_BASE_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/a\/[0-9a-f]+$/);
      }
    }
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const seen = fs.readFileSync(path.join(workspace, 'seen-env.txt'), 'utf8');
    expect(seen).toContain(`ANTHROPIC_API_KEY=${GATEWAY_CLIENT_KEY}`);
    expect(seen).not.toContain(KEY);
    // The server took only the real key, so the gateway put it on every request it served.
    const served = (await tallyMicroUsd(server)) - before;
    expect(served).toBeGreaterThan(0);
    expect(ledgerSpend((await handle.query(budgetQuery)).ledger).microUsd).toBe(served);
  });
});
