/**
 * End to end: the real `claude` CLI (node_modules/.bin/claude) against the local model server, in a temp
 * workspace with a temp HOME, driven through MockActivityEnvironment like a worker would.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Info } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCliActivities,
  ensureClaudeAvailable,
  type CliActivities,
  type ClaudeHeartbeat,
  type ClaudeTurnInput,
  type ClaudeTurnSummary,
} from '../../activities/cli';
import { SESSION_MARKER_ENV } from '../../activities/cli/process';
import { ConfigError } from '../../config/errors';
import { priceUsage } from '../../config/pricing';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { failureOf } from '../harness/failure';

const CLAUDE = path.resolve(import.meta.dirname, '../../node_modules/.bin/claude');

let server: ModelServer;
let tmp: string;
let home: string;
let outputsDir: string;

beforeAll(async () => {
  server = await startModelServer();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-cli-e2e-'));
  home = path.join(tmp, 'home');
  outputsDir = path.join(tmp, 'outputs');
  fs.mkdirSync(home);
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function activities(over: Partial<Parameters<typeof createCliActivities>[0]> = {}) {
  return createCliActivities({
    logger: pino({ level: 'silent' }),
    claudePath: CLAUDE,
    outputsDir,
    anthropic: { apiKey: 'sk-test-not-a-secret', baseURL: server.url },
    env: { HOME: home },
    ...over,
  });
}

const noop = (): void => undefined;
/** The SDK's default activity logger prints every expected failure; these tests assert them instead. */
const quiet = { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: noop };
const mockEnv = (info?: Partial<Info>) => new MockActivityEnvironment(info, { logger: quiet });
/** Runs claudeTurn in a mock activity context (typed: MockActivityEnvironment.run cannot infer the result). */
const turn = (env: MockActivityEnvironment, acts: CliActivities, i: ClaudeTurnInput) =>
  env.run<[ClaudeTurnInput], ClaudeTurnSummary, CliActivities['claudeTurn']>(acts.claudeTurn, i);

function workspace(): string {
  return fs.mkdtempSync(path.join(tmp, 'ws-'));
}

function input(over: Partial<ClaudeTurnInput> & Pick<ClaudeTurnInput, 'prompt' | 'cwd'>): ClaudeTurnInput {
  return { runId: 'run-1', agentId: 'dev', sessionId: randomUUID(), previousSessionCostUsd: 0, ...over };
}

/** The usage the server served (successful /v1/messages from index `from` on), priced with config/pricing. */
function servedCost(from = 0): number {
  return server.requests
    .slice(from)
    .filter((r) => r.endpoint === 'messages' && r.status === 200)
    .reduce((s, r) => s + priceUsage(r.responseModel!, r.usage!), 0);
}

/** Processes in the table, as `ps` shows them (independent of the /proc scan the activity uses). */
function processTable(): Array<{ pid: number; pgid: number; comm: string; args: string }> {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,comm=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(l);
      return { pid: Number(m?.[1]), pgid: Number(m?.[2]), comm: m?.[3] ?? '', args: m?.[4] ?? '' };
    });
}

describe('claudeTurn with the real CLI', () => {
  it('creates a file with the Write tool and reports the cost the server priced', async () => {
    const ws = workspace();
    const from = server.requests.length;
    const env = mockEnv();
    const beats: ClaudeHeartbeat[] = [];
    env.on('heartbeat', (d: ClaudeHeartbeat) => beats.push(d));
    const sum = await turn(
      env,
      activities(),
      input({
        prompt: 'Create the greeting file.\n@write hello.txt hi there',
        cwd: ws,
        permissionMode: 'acceptEdits',
        agents: {
          checker: { description: 'Checks the greeting', prompt: 'Check hello.txt.', tools: ['Read'] },
        },
      }),
    );
    expect(fs.readFileSync(path.join(ws, 'hello.txt'), 'utf8')).toBe('hi there');
    expect(sum.ok).toBe(true);
    expect(sum.subtype).toBe('success');
    expect(sum.lastTool).toBe('Write');
    expect(sum.numTurns).toBeGreaterThanOrEqual(2);
    expect(sum.sessionMode).toBe('new');
    expect(sum.costUsd).toBeGreaterThan(0);
    expect(sum.costUsd).toBeCloseTo(servedCost(from), 9);
    expect(sum.totalCostUsd).toBe(sum.costUsd);
    expect(sum.usage.outputTokens).toBeGreaterThan(0);
    expect(sum.usage).toEqual(sum.sessionUsage);
    // The transcript holds every stdout line; the last one is the result.
    const lines = fs.readFileSync(sum.transcriptPath, 'utf8').trim().split('\n');
    expect(sum.transcriptPath).toBe(path.join(outputsDir, 'run-1', 'agents', 'dev.jsonl'));
    const init = JSON.parse(lines[0]!);
    expect(init).toMatchObject({ type: 'system', subtype: 'init', session_id: sum.sessionId });
    expect(init.agents).toContain('checker'); // the subagent reached the CLI through --agents
    expect(JSON.parse(lines.at(-1)!).type).toBe('result');
    expect(beats.some((b) => b.turns >= 1 && b.pgid !== undefined)).toBe(true);
    expect(beats.at(-1)?.costUsd).toBeCloseTo(sum.costUsd, 9);
  });

  it('resumes the session on the next turn and charges only the delta', async () => {
    const ws = workspace();
    const sessionId = randomUUID();
    const acts = activities();
    const first = await turn(
      mockEnv(),
      acts,
      input({
        agentId: 'resumer',
        sessionId,
        prompt: '@write a.txt one',
        cwd: ws,
        permissionMode: 'acceptEdits',
      }),
    );
    const from = server.requests.length;
    const second: ClaudeTurnSummary = await turn(
      mockEnv(),
      acts,
      input({
        agentId: 'resumer',
        sessionId,
        resume: true,
        prompt: 'Now summarise what you did.',
        cwd: ws,
        permissionMode: 'acceptEdits',
        previousSessionCostUsd: first.totalCostUsd,
        previousSessionUsage: first.sessionUsage,
      }),
    );
    expect(second.ok).toBe(true);
    expect(second.sessionMode).toBe('resume');
    expect(second.sessionId).toBe(sessionId);
    // total_cost_usd carries over on resume; the turn is charged the difference only.
    expect(second.totalCostUsd).toBeGreaterThan(first.totalCostUsd);
    expect(second.costUsd).toBeCloseTo(second.totalCostUsd - first.totalCostUsd, 9);
    expect(second.costUsd).toBeCloseTo(servedCost(from), 9);
    expect(second.usage.outputTokens).toBe(
      second.sessionUsage.outputTokens - first.sessionUsage.outputTokens,
    );
    // Both turns appended to the same transcript.
    const results = fs
      .readFileSync(second.transcriptPath, 'utf8')
      .trim()
      .split('\n')
      .filter((l) => l.includes('"type":"result"'));
    expect(results).toHaveLength(2);

    // A failed resumed turn costs nothing new and never lowers the session's totals.
    // Two: the CLI retries once itself (only it sees retry-after), then the failure reaches the activity.
    server.injectFaults(
      { status: 500, message: 'injected outage' },
      { status: 500, message: 'injected outage' },
    );
    const f = await failureOf(
      turn(
        mockEnv(),
        acts,
        input({
          agentId: 'resumer',
          sessionId,
          resume: true,
          prompt: 'Once more.',
          cwd: ws,
          previousSessionCostUsd: second.totalCostUsd,
          previousSessionUsage: second.sessionUsage,
        }),
      ),
    );
    expect(f.type).toBe('ApiUnavailable');
    const failed = f.details?.[0] as ClaudeTurnSummary;
    expect(failed.costUsd).toBe(0);
    expect(failed.totalCostUsd).toBe(second.totalCostUsd);
    expect(failed.sessionUsage).toEqual(second.sessionUsage);
  });

  it('fails a 400 as InvalidRequest, not retryable, with the server message and the cost so far', async () => {
    const f = await failureOf(
      turn(mockEnv(), activities(), input({ prompt: '@fail 400\n@say never', cwd: workspace() })),
    );
    expect(f.type).toBe('InvalidRequest');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('rehearsal: @fail 400');
    const summary = f.details?.[0] as ClaudeTurnSummary;
    expect(summary.ok).toBe(false);
    expect(summary.costUsd).toBe(0);
    expect(summary.costKnown).toBe(true);
  });

  it('fails a 500 as ApiUnavailable, retryable', async () => {
    const f = await failureOf(
      turn(mockEnv(), activities(), input({ prompt: '@fail 500\n@say never', cwd: workspace() })),
    );
    expect(f.type).toBe('ApiUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect((f.details?.[0] as ClaudeTurnSummary).subtype).toBe('success'); // the CLI's odd API-error shape
  });

  it('falls back to --resume when --session-id says the session exists (worker died after creating it)', async () => {
    const ws = workspace();
    const sessionId = randomUUID();
    const acts = activities();
    await turn(mockEnv(), acts, input({ agentId: 'twice', sessionId, prompt: 'hello', cwd: ws }));
    const again = await turn(
      mockEnv(),
      acts,
      input({ agentId: 'twice', sessionId, prompt: 'hello', cwd: ws }),
    );
    expect(again.ok).toBe(true);
    expect(again.sessionMode).toBe('resume');
    const stderr = fs.readFileSync(again.stderrPath, 'utf8');
    expect(stderr).toMatch(/already in use/);
  });

  it('falls back to --session-id when --resume finds no conversation (killed before the transcript existed)', async () => {
    const sum = await turn(
      mockEnv({ attempt: 2 }),
      activities(),
      input({ agentId: 'fresh', prompt: 'hello', cwd: workspace() }),
    );
    expect(sum.ok).toBe(true);
    expect(sum.sessionMode).toBe('new');
  });

  it('on a retry attempt, kills processes a dead worker left running for the session', async () => {
    const sessionId = randomUUID();
    // Stands in for a CLI (or one of its tools) orphaned by a SIGKILLed worker: it carries the marker.
    const leftover = spawn('sleep', ['60'], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, [SESSION_MARKER_ENV]: sessionId },
    });
    const gone = new Promise((r) => leftover.once('exit', r));
    const sum = await turn(
      mockEnv({ attempt: 2 }),
      activities(),
      input({ agentId: 'orphaned', sessionId, prompt: 'hello', cwd: workspace() }),
    );
    await gone;
    expect(leftover.signalCode).toBe('SIGKILL');
    expect(sum.ok).toBe(true);
  });

  // Zombies count: the group's orphans (the watchdog's poller, bwrap's namespace init) are reaped by pid 1,
  // and the activity returns only once they are gone.
  it('cancellation ends the whole process tree, tools included', async () => {
    const tag = `orch-cancel-${randomUUID()}`;
    const env = mockEnv();
    const beats: ClaudeHeartbeat[] = [];
    env.on('heartbeat', (d: ClaudeHeartbeat) => beats.push(d));
    const running = turn(
      env,
      activities(),
      input({
        agentId: 'cancelme',
        // Bash runs each command in a session of its own, outside the CLI's process group.
        prompt: `@bash node -e "setTimeout(() => {}, 60000)" ${tag}`,
        cwd: workspace(),
        allowedTools: ['Bash'],
      }),
    );
    const outcome = running.then(
      () => undefined,
      (e: unknown) => e,
    );
    // Wait until the tool's process is running.
    const deadline = Date.now() + 30_000;
    while (!processTable().some((p) => p.args.includes(tag) && p.comm === 'node')) {
      if (Date.now() > deadline) throw new Error('the Bash tool never started');
      await delay(100);
    }
    const pgid = beats.at(-1)?.pgid;
    expect(pgid).toBeGreaterThan(0);
    expect(processTable().some((p) => p.pgid === pgid && p.comm === 'claude')).toBe(true);
    env.cancel();
    const err = await outcome;
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(((err as CancelledFailure).details[0] as ClaudeTurnSummary).lastTool).toBe('Bash');
    const left = processTable().filter((p) => p.pgid === pgid || p.args.includes(tag));
    expect(left).toEqual([]);
  });

  it('reports a missing binary as ClaudeNotFound, not retryable', async () => {
    const f = await failureOf(
      mockEnv().run(
        activities({ claudePath: path.join(tmp, 'no-such-claude') }).claudeTurn,
        input({ prompt: 'hello', cwd: workspace() }),
      ),
    );
    expect(f.type).toBe('ClaudeNotFound');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/CLAUDE_PATH/);
  });
});

describe('ensureClaudeAvailable', () => {
  it('returns the version of the installed CLI', async () => {
    await expect(ensureClaudeAvailable(CLAUDE)).resolves.toMatch(/^\d+\.\d+\.\d+ \(Claude Code\)/);
  });

  it('throws a ConfigError that says how to fix a missing binary', async () => {
    const p = ensureClaudeAvailable('/nonexistent/claude');
    await expect(p).rejects.toBeInstanceOf(ConfigError);
    await expect(p).rejects.toThrow(/not found at "\/nonexistent\/claude".*CLAUDE_PATH/);
  });
});
