/**
 * The process handling of claudeTurn, with a fake `claude` (a shell script) that misbehaves on purpose:
 * it ignores SIGTERM and leaves a child in a session of its own, as the real CLI's Bash tool does.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox } from '../../activities/sandbox';
import {
  createCliActivities,
  type CliActivities,
  type ClaudeHeartbeat,
  type ClaudeTurnInput,
  type ClaudeTurnSummary,
} from '../../activities/cli';

const FAKE_CLAUDE = `#!/bin/bash
# Fake claude: FAKE_MODE selects the behaviour.
case "$FAKE_MODE" in
  stubborn)
    trap '' TERM
    setsid sleep 300 < /dev/null > /dev/null 2>&1 &
    echo $! > "$FAKE_PIDFILE"
    echo '{"type":"system","subtype":"init","session_id":"'"$ORCHESTRATOR_CLAUDE_SESSION"'","model":"fake-model"}'
    echo '{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","name":"Bash"}]}}'
    while true; do sleep 0.2; done
    ;;
  badflag)
    echo "error: unknown option '--frobnicate'" >&2
    exit 1
    ;;
  selfkill)
    echo '{"type":"system","subtype":"init","session_id":"x"}'
    kill -KILL $$
    ;;
  args)
    cat > "$FAKE_PIDFILE.stdin"
    printf '%s\\n' "$@" > "$FAKE_PIDFILE.args"
    env > "$FAKE_PIDFILE.env"
    echo 'not json at all'
    echo '{"type":"result","subtype":"success","is_error":false,"result":"ok","total_cost_usd":0.75,"num_turns":1,"modelUsage":{"fake":{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":1,"cacheCreationInputTokens":2,"costUSD":0.75}}}'
    ;;
esac
`;

let tmp: string;
let fake: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-cli-proc-'));
  fake = path.join(tmp, 'claude');
  fs.writeFileSync(fake, FAKE_CLAUDE, { mode: 0o755 });
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const noop = (): void => undefined;
const quiet = { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: noop };
const mockEnv = (info?: Partial<Info>) => new MockActivityEnvironment(info, { logger: quiet });
/** Runs claudeTurn in a mock activity context (typed: MockActivityEnvironment.run cannot infer the result). */
const turn = (env: MockActivityEnvironment, acts: CliActivities, i: ClaudeTurnInput) =>
  env.run<[ClaudeTurnInput], ClaudeTurnSummary, CliActivities['claudeTurn']>(acts.claudeTurn, i);

function activities() {
  return createCliActivities({
    logger: pino({ level: 'silent' }),
    claudePath: fake,
    outputsDir: path.join(tmp, 'outputs'),
    anthropic: { apiKey: 'sk-fake', baseURL: 'http://127.0.0.1:9' },
    env: { HOME: tmp },
    killGraceMs: 300,
    heartbeatIntervalMs: 100,
    // Process handling is tested on the host: the fake CLI reports pids, which a pid namespace would hide.
    sandbox: createSandbox({
      outputsDir: path.join(tmp, 'outputs'),
      env: { ...process.env, ORCHESTRATOR_SANDBOX: 'off' },
    }),
  });
}

/** Live processes as `ps` shows them; zombies (killed, not yet reaped by whoever inherited them) are dead. */
function liveProcesses(): Array<{ pid: number; pgid: number }> {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,stat='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && !f[2]!.startsWith('Z'))
    .map(([pid, pgid]) => ({ pid: Number(pid), pgid: Number(pgid) }));
}

const alive = (pid: number): boolean => liveProcesses().some((p) => p.pid === pid);
const groupMembers = (pgid: number): number[] =>
  liveProcesses()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid);

describe('claudeTurn process handling', () => {
  it('cancellation: SIGTERM, then SIGKILL after the grace period, then sweeps children outside the group', async () => {
    const pidFile = path.join(tmp, `stubborn-${randomUUID()}`);
    const env = mockEnv();
    const beats: ClaudeHeartbeat[] = [];
    env.on('heartbeat', (d: ClaudeHeartbeat) => beats.push(d));
    const outcome = turn(env, activities(), {
      runId: 'r',
      agentId: 'stubborn',
      sessionId: randomUUID(),
      prompt: 'hang',
      cwd: tmp,
      extraEnv: { FAKE_MODE: 'stubborn', FAKE_PIDFILE: pidFile },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    while (!beats.some((b) => b.turns === 1 && b.lastTool === 'Bash') || !fs.existsSync(pidFile))
      await delay(20);
    const pgid = beats.at(-1)!.pgid!;
    const orphanPid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(groupMembers(pgid).length).toBeGreaterThan(0);
    expect(alive(orphanPid)).toBe(true);
    expect(groupMembers(pgid)).not.toContain(orphanPid); // its own session: a group kill cannot reach it

    const t0 = Date.now();
    env.cancel();
    const err = await outcome;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250); // waited for the grace period before SIGKILL
    expect(err).toBeInstanceOf(CancelledFailure);
    const summary = (err as CancelledFailure).details[0] as ClaudeTurnSummary;
    expect(summary).toMatchObject({
      ok: false,
      subtype: 'none',
      costKnown: false,
      lastTool: 'Bash',
      model: 'fake-model',
    });
    expect(groupMembers(pgid)).toEqual([]);
    expect(alive(orphanPid)).toBe(false);
  });

  it('heartbeats on a timer while the CLI is quiet', async () => {
    // Scheduled with a 6 s heartbeat timeout, the shortest a run may set: beats every 2 s (a third of it),
    // so three timer beats take ~6 s rather than ~30 s at the default 30 s timeout's 10 s pace.
    const env = mockEnv({ heartbeatTimeoutMs: 6_000 });
    const beats: ClaudeHeartbeat[] = [];
    env.on('heartbeat', (d: ClaudeHeartbeat) => beats.push(d));
    const pidFile = path.join(tmp, `quiet-${randomUUID()}`);
    const run = turn(env, activities(), {
      runId: 'r',
      agentId: 'quiet',
      sessionId: randomUUID(),
      prompt: 'hang',
      cwd: tmp,
      extraEnv: { FAKE_MODE: 'stubborn', FAKE_PIDFILE: pidFile },
    }).catch(() => undefined);
    // After its last line (the Bash tool_use) the fake CLI prints nothing more: later beats are the timer's.
    while (!beats.some((b) => b.lastTool === 'Bash')) await delay(20);
    const early = beats.length;
    await new Promise<void>((resolve) => env.on('heartbeat', () => beats.length - early >= 3 && resolve()));
    expect(beats.length - early).toBeGreaterThanOrEqual(3);
    env.cancel();
    await run;
  });

  it('reads stderr when stdout has no result: a bad flag is InvalidInvocation, not retryable', async () => {
    const err = await turn(mockEnv(), activities(), {
      runId: 'r',
      agentId: 'badflag',
      sessionId: randomUUID(),
      prompt: 'x',
      cwd: tmp,
      extraEnv: { FAKE_MODE: 'badflag' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'InvalidInvocation', nonRetryable: true });
    expect((err as Error).message).toContain("unknown option '--frobnicate'");
    expect(fs.readFileSync(path.join(tmp, 'outputs', 'r', 'agents', 'badflag.stderr.log'), 'utf8')).toContain(
      '--frobnicate',
    );
  });

  it('a CLI killed by someone else is ProcessKilled, retryable', async () => {
    const err = await turn(mockEnv(), activities(), {
      runId: 'r',
      agentId: 'selfkill',
      sessionId: randomUUID(),
      prompt: 'x',
      cwd: tmp,
      extraEnv: { FAKE_MODE: 'selfkill' },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'ProcessKilled', nonRetryable: false });
  });

  it('passes flags as argv, the prompt on stdin, and the environment; tolerates junk lines', async () => {
    const pidFile = path.join(tmp, `args-${randomUUID()}`);
    const sessionId = randomUUID();
    const prompt = '--not-a-flag\nline two';
    const sum = await turn(mockEnv({ attempt: 1 }), activities(), {
      runId: 'r',
      agentId: 'args',
      sessionId,
      prompt,
      cwd: tmp,
      model: 'sonnet',
      maxTurns: 7,
      maxBudgetUsd: 1.5,
      appendSystemPrompt: 'Role: developer',
      allowedTools: ['Bash(git *)', 'Edit'],
      disallowedTools: ['WebFetch'],
      permissionMode: 'acceptEdits',
      agents: { checker: { description: 'Checks', prompt: 'Check the work.', tools: ['Read'] } },
      extraEnv: { FAKE_MODE: 'args', FAKE_PIDFILE: pidFile, EXTRA: 'yes' },
      previousSessionCostUsd: 0.25,
    });
    expect(fs.readFileSync(`${pidFile}.stdin`, 'utf8')).toBe(prompt);
    const args = fs.readFileSync(`${pidFile}.args`, 'utf8').trimEnd().split('\n');
    expect(args).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--session-id',
      sessionId,
      '--model',
      'sonnet',
      '--max-turns',
      '7',
      '--max-budget-usd',
      '1.5',
      '--append-system-prompt',
      'Role: developer',
      '--permission-mode',
      'acceptEdits',
      '--setting-sources',
      '',
      '--agents',
      JSON.stringify({ checker: { description: 'Checks', prompt: 'Check the work.', tools: ['Read'] } }),
      '--allowedTools',
      'Bash(git *)',
      'Edit',
      '--disallowedTools',
      'WebFetch',
    ]);
    const env = Object.fromEntries(
      fs
        .readFileSync(`${pidFile}.env`, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(env).toMatchObject({
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:9',
      ANTHROPIC_API_KEY: 'sk-fake',
      CLAUDE_CODE_MAX_RETRIES: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      HOME: tmp,
      EXTRA: 'yes',
      ORCHESTRATOR_CLAUDE_SESSION: sessionId,
    });
    expect(sum).toMatchObject({
      ok: true,
      resultText: 'ok',
      totalCostUsd: 0.75,
      costUsd: 0.5,
      usage: { inputTokens: 10, outputTokens: 5, cacheRead: 1, cacheCreation: 2 },
    });
    // The junk line is in the transcript too: it holds stdout verbatim.
    expect(fs.readFileSync(sum.transcriptPath, 'utf8')).toContain('not json at all');
  });

  it('rejects bad input and a missing workspace as InvalidInput, not retryable', async () => {
    const bad = await turn(mockEnv(), activities(), {
      runId: 'r',
      agentId: '../evil',
      sessionId: 'nope',
      prompt: '',
      cwd: 'rel',
    }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect((bad as Error).message).toMatch(
      /agentId: .*sessionId: must be a UUID.*prompt: .*cwd: must be an absolute path/,
    );
    const missing = await turn(mockEnv(), activities(), {
      runId: 'r',
      agentId: 'a',
      sessionId: randomUUID(),
      prompt: 'x',
      cwd: path.join(tmp, 'nope'),
    }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  });
});
