/**
 * The real `claude` CLI against the local model server: the stand-in must be good enough for the CLI to do
 * real work (write files, run commands) and to account cost exactly as the server served it.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { priceUsage } from '../../config/pricing';
import { startModelServer, type ModelServer } from '../../src/modelserver';

const CLAUDE = path.resolve(import.meta.dirname, '../../node_modules/.bin/claude');

let srv: ModelServer;
let home: string;
let cwd: string;

beforeAll(async () => {
  srv = await startModelServer();
});
afterAll(async () => {
  await srv.close();
});
beforeEach(() => {
  srv.requests.length = 0;
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-home-'));
  // The CLI reports the real path of its cwd.
  cwd = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cli-cwd-')));
});

interface StreamLine {
  type: string;
  subtype?: string;
  [k: string]: unknown;
}

async function claude(args: string[], env: Record<string, string> = {}) {
  const r = await execa(CLAUDE, ['-p', '--output-format', 'stream-json', '--verbose', ...args], {
    cwd,
    reject: false,
    timeout: 60_000,
    // Without this the CLI waits 3 s for piped stdin before it starts.
    stdin: 'ignore',
    env: {
      HOME: home,
      ANTHROPIC_BASE_URL: srv.url,
      ANTHROPIC_API_KEY: 'test',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      ...env,
    },
  });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StreamLine);
  const result = lines.filter((l) => l.type === 'result').at(-1);
  return { exitCode: r.exitCode, stderr: r.stderr, lines, result };
}

/** What the server served, priced per request on the model the response named. */
function servedCost(): number {
  return srv.requests.reduce(
    (sum, r) => sum + (r.usage && r.responseModel ? priceUsage(r.responseModel, r.usage) : 0),
    0,
  );
}

describe('claude CLI against the model server', () => {
  it('performs @write with the Write tool in its cwd and reports the cost the server served', async () => {
    const r = await claude(['--permission-mode', 'acceptEdits', '@write hello.txt hi']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(cwd, 'hello.txt'), 'utf8')).toBe('hi');
    expect(r.result).toMatchObject({
      subtype: 'success',
      is_error: false,
      num_turns: 2,
      result: 'Done: wrote hello.txt.',
    });

    const messages = srv.requests.filter((q) => q.endpoint === 'messages');
    expect(messages).toHaveLength(2);
    expect(messages[0]).toMatchObject({
      stream: true,
      status: 200,
      cwd,
      model: 'claude-opus-5-5',
      stopReason: 'tool_use',
    });
    expect(messages[0]?.content?.[1]).toMatchObject({
      name: 'Write',
      input: { file_path: path.join(cwd, 'hello.txt') },
    });
    expect(messages[1]?.stopReason).toBe('end_turn');
    // The CLI's accounting matches the server's usage priced with our table, cache reads/writes included.
    expect(messages[1]?.usage?.cache_read_input_tokens).toBeGreaterThan(0);
    expect(r.result?.total_cost_usd).toBeCloseTo(servedCost(), 9);
    expect(Object.keys(r.result?.modelUsage as object)).toEqual(['claude-opus-5-5']);
  });

  it('runs @bash when Bash is pre-approved (prompt after --), and answers as the role it is given', async () => {
    const r = await claude([
      '--permission-mode',
      'acceptEdits',
      '--model',
      'sonnet',
      '--append-system-prompt',
      'Role: tester',
      '--allowedTools',
      'Bash',
      '--',
      "Check the build.\n@bash python3 -c 'print(6*7)' > answer.txt",
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(cwd, 'answer.txt'), 'utf8')).toBe('42\n');
    expect(srv.requests[0]?.system).toMatch(/Role: tester$/);
    expect(srv.requests[0]?.responseModel).toBe('claude-sonnet-5-5');
    expect(r.result?.total_cost_usd).toBeCloseTo(servedCost(), 9);
  });

  it('writes the role document when there are no directives', async () => {
    const r = await claude([
      '--permission-mode',
      'acceptEdits',
      '--append-system-prompt',
      'Role: planner',
      'Plan a todo app',
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(cwd, 'plan.md'), 'utf8')).toMatch(/^# Plan\n\nTask: Plan a todo app\n/);
    expect(r.result?.result).toMatch(/^As planner: plan ready/);
  });

  it('is resumable: a session cut by --max-turns continues where it stopped', async () => {
    const session = randomUUID();
    const prompt = '@write a.txt one\n@write b.txt two';
    const first = await claude([
      '--permission-mode',
      'acceptEdits',
      '--max-turns',
      '1',
      '--session-id',
      session,
      prompt,
    ]);
    expect(first.exitCode).toBe(1);
    expect(first.result).toMatchObject({ subtype: 'error_max_turns', is_error: true });
    expect(fs.existsSync(path.join(cwd, 'a.txt'))).toBe(true);
    expect(fs.existsSync(path.join(cwd, 'b.txt'))).toBe(false);

    const second = await claude(['--permission-mode', 'acceptEdits', '--resume', session, 'continue']);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(fs.readFileSync(path.join(cwd, 'b.txt'), 'utf8')).toBe('two');
    expect(second.result?.result).toBe('Done: wrote a.txt; wrote b.txt.');
    // total_cost_usd is cumulative over the session.
    expect(second.result?.total_cost_usd).toBeCloseTo(servedCost(), 9);
  });

  it('reports an API error as is_error with api_error_status and exit 1', async () => {
    // Not a plain 400: the CLI retries those with fewer beta features. 401 and "prompt is too long" are final.
    srv.injectFaults({ status: 401 });
    const r = await claude(['--permission-mode', 'acceptEdits', 'hi']);
    expect(r.exitCode).toBe(1);
    expect(r.result).toMatchObject({ is_error: true, api_error_status: 401, total_cost_usd: 0 });
    expect(srv.requests.map((q) => [q.status, q.error])).toEqual([[401, 'authentication_error']]);
  });
});
