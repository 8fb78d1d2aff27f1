/**
 * A stalled worker is the worker's failure, not the agent's. When the worker's event loop stops renewing
 * an agent's lease for longer than LEASE_STALE_S (load, or a flood of work in the same process), the
 * agent's watchdog ends the agent, as it must: the worker may be frozen for good. That attempt is then a
 * `LeaseLost` infrastructure failure, which Temporal retries, instead of `ScriptKilled`, which used up
 * one of the agent's own attempts (seen under a 3,000-signal flood at load 18). A script that kills
 * itself is still the agent's failure: the stall is measured on the worker's clock, which a script
 * cannot fake.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createSandbox } from '../../activities/sandbox';
import { createScriptActivities, type ScriptTurnInput, type ScriptTurnResult } from '../../activities/script';
import { LEASE_STALE_S, WATCHDOG_GRACE_S } from '../../activities/watchdog';
import { isRetryable } from '../../src/shared/failures';
import { failureOf } from '../harness/failure';
import { processesMentioning } from '../harness/processes';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-script-stall-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const noop = (): void => undefined;
const quiet = { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: noop };
const acts = createScriptActivities({
  logger: pino({ level: 'silent' }),
  outputsDir: path.join(tmp, 'outputs'),
  // Process handling is tested on the host (the sandbox is tested in its own files).
  sandbox: createSandbox({
    outputsDir: path.join(tmp, 'outputs'),
    env: { ...process.env, ORCHESTRATOR_SANDBOX: 'off' },
  }),
});

// Confined by bubblewrap, the process starter is the script's watchdog (activities/spawner startWatched).
const confinedActs = createScriptActivities({
  logger: pino({ level: 'silent' }),
  outputsDir: path.join(tmp, 'outputs'),
  sandbox: createSandbox({ outputsDir: path.join(tmp, 'outputs') }),
});
const bwrapWorks = spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', 'true']).status === 0;

function turn(command: string[], with_ = acts): Promise<ScriptTurnResult> {
  const workspace = fs.mkdtempSync(path.join(tmp, 'ws-'));
  const env = new MockActivityEnvironment(undefined, { logger: quiet });
  const run = (input: ScriptTurnInput) => with_.scriptTurn(input);
  return env.run(run, { runId: `stall-${path.basename(workspace)}`, agentId: 'dev', workspace, command });
}

/** Holds this thread (the worker's event loop) without yielding, as a stalled worker does. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('a script agent under a stalled worker', () => {
  it('ended by its watchdog after the lease went stale: LeaseLost, retried by Temporal', async () => {
    const running = turn(['sh', '-c', 'sleep 120']);
    // Let the script start and its lease be renewed once, then hold the event loop past the lease,
    // the watchdog's poll (1 s) and its TERM → KILL grace.
    await new Promise((r) => setTimeout(r, 1_500));
    stall((LEASE_STALE_S + 1 + WATCHDOG_GRACE_S + 2) * 1_000);
    const failure = await failureOf(running);
    expect(failure.type, failure.message).toBe('LeaseLost');
    expect(failure.nonRetryable).toBe(false);
    expect(isRetryable(failure.type ?? undefined)).toBe(true);
    expect(failure.message).toMatch(/worker stalled \d+ s/);
  }, 60_000);

  it.skipIf(!bwrapWorks)(
    'confined by bubblewrap, ended by the process starter after the lease went stale: LeaseLost',
    async () => {
      const tag = `120.${String(Date.now()).slice(-6)}`;
      const running = turn(['sh', '-c', `sleep ${tag}`], confinedActs);
      await new Promise((r) => setTimeout(r, 1_500));
      // bubblewrap runs under no watchdog shell: the process starter watches it.
      const chain = processesMentioning(`sleep ${tag}`);
      expect(chain.some((l) => l.includes('bwrap'))).toBe(true);
      expect(chain.filter((l) => l.includes('orchestrator-watchdog'))).toEqual([]);
      stall((LEASE_STALE_S + 1 + WATCHDOG_GRACE_S + 2) * 1_000);
      const failure = await failureOf(running);
      expect(failure.type, failure.message).toBe('LeaseLost');
      expect(failure.nonRetryable).toBe(false);
    },
    60_000,
  );

  it('a script that kills its whole process group, with no stall, is still the agent’s own failure', async () => {
    const failure = await failureOf(turn(['sh', '-c', 'echo "[watchdog] lease x is stale"; kill -KILL 0']));
    expect(failure.type, failure.message).toBe('ScriptKilled');
    expect(failure.nonRetryable).toBe(true);
    // One line a person can read, not the watchdog's shell script.
    expect(failure.message).toBe('script ended by SIGKILL (Forced termination)');
  });
});
