import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { checkGates, createGovernanceActivities, evaluateGateList } from '../../activities/governance';
import { snapshotWorkspace } from '../../activities/workspace';
import { GateSchema, type Gate } from '../../config/governance';

let ws: string;

function write(rel: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
  fs.writeFileSync(path.join(ws, rel), text);
}

async function evalOne(raw: Record<string, unknown>) {
  const gate: Gate = GateSchema.parse(raw);
  const { passed, results } = await evaluateGateList({ workspace: ws, gates: [gate] });
  const [result] = results;
  expect(result?.passed).toBe(passed);
  return result!;
}

/**
 * True when no live process has `marker` in its command line. Gate commands run in their own pid
 * namespace, so a pid they print means nothing outside.
 */
function noneRunning(marker: string): boolean {
  return fs.readdirSync('/proc').every((e) => {
    if (!/^\d+$/.test(e)) return true;
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      return !cmd.includes(marker) || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    } catch {
      return true;
    }
  });
}

beforeEach(() => {
  ws = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-gates-'));
});

describe('tool gates', () => {
  it('pass on the expected exit code', async () => {
    const r = await evalOne({ id: 't', kind: 'tool', command: ['node', '-e', 'process.exit(0)'] });
    expect(r).toMatchObject({ passed: true, on_fail: 'fail', evidence: { exit_code: 0 } });
    expect(r.evidence).not.toHaveProperty('output_tail');
    const three = await evalOne({ id: 't3', kind: 'tool', command: ['sh', '-c', 'exit 3'], expect_exit: 3 });
    expect(three.passed).toBe(true);
  });

  it('fail with the command output in the evidence', async () => {
    const r = await evalOne({
      id: 'tests',
      kind: 'tool',
      command: ['sh', '-c', 'echo "running suite"; echo "FAIL: 3 tests failed" >&2; exit 1'],
      on_fail: 'retry_phase',
      max_retries: 2,
    });
    expect(r).toMatchObject({
      passed: false,
      on_fail: 'retry_phase',
      max_retries: 2,
      evidence: { exit_code: 1 },
    });
    expect(r.evidence.output_tail).toContain('running suite');
    expect(r.evidence.output_tail).toContain('FAIL: 3 tests failed');
    expect(r.summary).toMatch(/exited 1 \(expected 0\)/);
  });

  it('keep only a capped tail of a long output', async () => {
    const r = await evalOne({
      id: 'noisy',
      kind: 'tool',
      command: ['node', '-e', 'process.stdout.write("x".repeat(200000) + "THE END\\n"); process.exit(2)'],
    });
    const tail = r.evidence.output_tail as string;
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(4096);
    expect(tail).toMatch(/THE END\n$/);
  });

  it('run in the workspace', async () => {
    write('marker.txt', 'here');
    const r = await evalOne({ id: 'cwd', kind: 'tool', command: ['sh', '-c', 'test -f marker.txt'] });
    expect(r.passed).toBe(true);
  });

  it('time out and kill the whole process group', async () => {
    const started = Date.now();
    const r = await evalOne({
      id: 'slow',
      kind: 'tool',
      command: ['sh', '-c', 'sleep 60.4712 & echo $! > child.pid; echo started; wait'],
      timeout_s: 1,
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r).toMatchObject({ passed: false, evidence: { timed_out: true } });
    expect(r.summary).toMatch(/timed out after 1s/);
    expect(r.evidence.output_tail).toContain('started');
    expect(fs.existsSync(path.join(ws, 'child.pid'))).toBe(true);
    // The group kill is asynchronous: wait for the child to be gone (bounded), not for a fixed time.
    for (const deadline = Date.now() + 10_000; !noneRunning('60.4712') && Date.now() < deadline;)
      await new Promise((res) => setTimeout(res, 20));
    expect(noneRunning('60.4712')).toBe(true);
  });

  it('do not wait for a background process left behind after the command exits', async () => {
    const started = Date.now();
    const r = await evalOne({
      id: 'bg',
      kind: 'tool',
      command: ['sh', '-c', 'sleep 60 & echo done'],
      timeout_s: 30,
    });
    expect(r.passed).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('fail with a clear reason when the program does not exist', async () => {
    const r = await evalOne({ id: 'missing', kind: 'tool', command: ['no-such-program-xyz'] });
    expect(r.passed).toBe(false);
    expect(r.evidence.spawn_error).toMatch(/ENOENT|No such file/);
    expect(r.summary).toMatch(/could not start/);
  });

  it('do not see the model credentials', async () => {
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-test-secret');
    try {
      const r = await evalOne({
        id: 'env',
        kind: 'tool',
        command: ['sh', '-c', 'test -z "$ANTHROPIC_API_KEY"'],
      });
      expect(r.passed).toBe(true);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('are killed when the evaluation is cancelled', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const gate = GateSchema.parse({ id: 'c', kind: 'tool', command: ['sleep', '60'], timeout_s: 60 });
    const started = Date.now();
    const { results } = await evaluateGateList({ workspace: ws, gates: [gate], signal: ac.signal });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(results[0]).toMatchObject({ passed: false, evidence: { cancelled: true } });
  });
});

describe('metric gates', () => {
  const fileGate = (threshold: number, over: Record<string, unknown> = {}) => ({
    id: 'coverage',
    kind: 'metric',
    source: { file: 'coverage/coverage-summary.json', json_path: 'total.lines.pct' },
    op: '>=',
    threshold,
    ...over,
  });

  it('read a JSON file and compare', async () => {
    write('coverage/coverage-summary.json', JSON.stringify({ total: { lines: { pct: 85.5 } } }));
    const pass = await evalOne(fileGate(80));
    expect(pass).toMatchObject({ passed: true, evidence: { value: 85.5, op: '>=', threshold: 80 } });
    const fail = await evalOne(fileGate(90));
    expect(fail).toMatchObject({ passed: false, evidence: { value: 85.5 } });
    expect(fail.summary).toBe('85.5 not >= 90');
  });

  it('index arrays and accept numeric strings', async () => {
    write('m.json', JSON.stringify({ runs: [{ score: '0.93' }] }));
    const r = await evalOne({
      id: 'm',
      kind: 'metric',
      source: { file: 'm.json', json_path: 'runs[0].score' },
      op: '>',
      threshold: 0.9,
    });
    expect(r).toMatchObject({ passed: true, evidence: { value: 0.93 } });
  });

  it('fail when the file or the value is missing', async () => {
    const missing = await evalOne(fileGate(80));
    expect(missing).toMatchObject({ passed: false, evidence: { value: null } });
    expect(missing.summary).toMatch(/coverage-summary\.json not found/);
    write('coverage/coverage-summary.json', JSON.stringify({ total: { lines: {} } }));
    const noValue = await evalOne(fileGate(80));
    expect(noValue.summary).toMatch(/total\.lines\.pct is not a number/);
    write('coverage/coverage-summary.json', '{ not json');
    expect((await evalOne(fileGate(80))).passed).toBe(false);
  });

  it('parse a command output with a regex (the last match wins)', async () => {
    const cmd = ['sh', '-c', 'echo "coverage: 50%"; echo "coverage: 72.5%"'];
    const gate = (op: string, threshold: number) => ({
      id: 'cov-cmd',
      kind: 'metric',
      source: { command: cmd, regex: 'coverage: (\\d+(?:\\.\\d+)?)%' },
      op,
      threshold,
    });
    expect(await evalOne(gate('>=', 70))).toMatchObject({
      passed: true,
      evidence: { value: 72.5, exit_code: 0 },
    });
    expect(await evalOne(gate('<', 70))).toMatchObject({ passed: false, evidence: { value: 72.5 } });
    expect(await evalOne(gate('==', 72.5))).toMatchObject({ passed: true });
  });

  it('fail with the output in the evidence when the regex does not match', async () => {
    const r = await evalOne({
      id: 'cov-cmd',
      kind: 'metric',
      source: { command: ['sh', '-c', 'echo no numbers here'], regex: 'coverage: (\\d+)' },
      op: '>=',
      threshold: 1,
    });
    expect(r.passed).toBe(false);
    expect(r.summary).toMatch(/regex did not match/);
    expect(r.evidence.output_tail).toContain('no numbers here');
  });
});

describe('validator gates', () => {
  const HEADER = '// Copyright (c) 2025 Acme Corp\n';

  it('pass when every file has the required header, ignoring node_modules', async () => {
    write('src/a.ts', HEADER + 'export const a = 1;\n');
    write('src/deep/b.ts', HEADER + 'export const b = 2;\n');
    write('node_modules/pkg/src/c.ts', 'no header\n');
    const r = await evalOne({
      id: 'license',
      kind: 'validator',
      glob: '**/*.ts',
      must_contain: '^// Copyright \\(c\\) \\d{4} Acme Corp',
    });
    expect(r).toMatchObject({ passed: true, evidence: { files_checked: 2, offending_count: 0 } });
  });

  it('fail listing the offending files', async () => {
    write('src/a.ts', HEADER);
    write('src/b.ts', 'export const b = 2;\n' + HEADER); // header not at the start
    write('src/c.ts', 'nothing\n');
    write('src/skip.gen.ts', 'generated\n');
    const r = await evalOne({
      id: 'license',
      kind: 'validator',
      glob: 'src/**/*.ts',
      exclude: ['**/*.gen.ts'],
      must_contain: '^// Copyright',
      on_fail: 'rollback',
    });
    expect(r).toMatchObject({
      passed: false,
      on_fail: 'rollback',
      evidence: { files_checked: 3, offending_count: 2 },
    });
    expect(r.evidence.offending).toEqual([
      { file: 'src/b.ts', reason: 'missing required pattern' },
      { file: 'src/c.ts', reason: 'missing required pattern' },
    ]);
  });

  it('report the line of a forbidden pattern, dotfiles included', async () => {
    write('.env', 'A=1\nB=2\nKEY=-----BEGIN RSA PRIVATE KEY-----\n');
    write('ok.txt', 'fine\n');
    const r = await evalOne({
      id: 'keys',
      kind: 'validator',
      glob: '**/*',
      must_not_contain: '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----',
    });
    expect(r.passed).toBe(false);
    expect(r.evidence.offending).toEqual([{ file: '.env', reason: 'forbidden pattern at line 3' }]);
  });

  it('cap the offending list but keep the full count', async () => {
    for (let i = 0; i < 25; i++) write(`f${String(i).padStart(2, '0')}.txt`, 'x');
    const r = await evalOne({ id: 'v', kind: 'validator', glob: '*.txt', must_contain: 'y' });
    expect(r.evidence.offending_count).toBe(25);
    expect(r.evidence.offending).toHaveLength(20);
  });

  it('enforce min_files', async () => {
    const r = await evalOne({ id: 'docs', kind: 'validator', glob: 'docs/*.md', min_files: 1 });
    expect(r.passed).toBe(false);
    expect(r.summary).toMatch(/0 file\(s\) match docs\/\*\.md, at least 1 required/);
    write('docs/README.md', '# hi');
    expect((await evalOne({ id: 'docs', kind: 'validator', glob: 'docs/*.md', min_files: 1 })).passed).toBe(
      true,
    );
  });
});

describe('validators see only the workspace, and re-read only what changed', () => {
  const keys = {
    id: 'no-keys',
    kind: 'validator',
    glob: '**/*',
    must_not_contain: '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----',
  };

  it('a validator on **/* reports only workspace files, never .orchestrator/ or .git/', async () => {
    write('a.txt', 'a');
    write('src/b.txt', 'b');
    write('.git/config', '-----BEGIN RSA PRIVATE KEY-----');
    write('.orchestrator/notes.txt', '-----BEGIN RSA PRIVATE KEY-----');
    write('sub/.git/HEAD', '-----BEGIN RSA PRIVATE KEY-----');
    // A shadow repository with a few snapshots: its objects are files under .orchestrator/ too.
    for (let i = 0; i < 3; i++) {
      write(`gen${i}.txt`, `generation ${i}`);
      await snapshotWorkspace({ workspace: ws, message: `s${i}` });
    }
    const r = await evalOne(keys);
    expect(r).toMatchObject({ passed: true, evidence: { files_checked: 5, offending_count: 0 } });
  });

  it('reads only the files whose content changed since the last evaluation; failures are never remembered', async () => {
    for (let i = 0; i < 30; i++) write(`f${i}.txt`, `file ${i}`);
    await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const first = await evalOne(keys);
    expect(first.evidence).toMatchObject({ files_checked: 30, files_read: 30 });

    write('f3.txt', 'changed');
    write('new.txt', '-----BEGIN EC PRIVATE KEY-----');
    const second = await evalOne(keys);
    expect(second).toMatchObject({ passed: false, evidence: { files_checked: 31, files_read: 2 } });
    expect(second.evidence.offending).toEqual([{ file: 'new.txt', reason: 'forbidden pattern at line 1' }]);
    // The offending file is judged again every time (an approval does not make it pass).
    const third = await evalOne(keys);
    expect(third).toMatchObject({ passed: false, evidence: { files_read: 1 } });
  });

  it('a rule is judged per rule: another pattern re-reads the files', async () => {
    write('x.txt', 'hello');
    await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    expect((await evalOne(keys)).evidence).toMatchObject({ files_read: 1 });
    const other = await evalOne({ id: 'hello', kind: 'validator', glob: '**/*', must_contain: 'hello' });
    expect(other).toMatchObject({ passed: true, evidence: { files_read: 1 } });
  });
});

describe('confinement', () => {
  it('a metric file symlinked outside the workspace is refused', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-outside-'));
    fs.writeFileSync(path.join(outside, 'cov.json'), JSON.stringify({ pct: 100 }));
    fs.symlinkSync(path.join(outside, 'cov.json'), path.join(ws, 'cov.json'));
    const r = await evalOne({
      id: 'm',
      kind: 'metric',
      source: { file: 'cov.json', json_path: 'pct' },
      op: '>=',
      threshold: 0,
    });
    expect(r.passed).toBe(false);
    expect(r.summary).toMatch(/resolves outside the workspace/);
  });

  it('a validator does not follow symlinks out of the workspace', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-outside-'));
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'PRIVATE');
    fs.mkdirSync(path.join(outside, 'dir'));
    fs.writeFileSync(path.join(outside, 'dir', 'inner.txt'), 'PRIVATE');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(ws, 'link.txt'));
    fs.symlinkSync(path.join(outside, 'dir'), path.join(ws, 'linkdir'));
    write('real.txt', 'ok');
    const r = await evalOne({ id: 'v', kind: 'validator', glob: '**/*.txt', must_not_contain: 'PRIVATE' });
    expect(r).toMatchObject({ passed: true, evidence: { files_checked: 1, offending_count: 0 } });
  });

  it('paths outside the workspace are refused by the schema', () => {
    expect(
      GateSchema.safeParse({
        id: 'm',
        kind: 'metric',
        source: { file: '../x.json', json_path: 'a' },
        op: '>=',
        threshold: 0,
      }).success,
    ).toBe(false);
    expect(GateSchema.safeParse({ id: 'v', kind: 'validator', glob: '/etc/*' }).success).toBe(false);
  });
});

describe('if_exists', () => {
  it('skips a gate when nothing matches, runs it otherwise', async () => {
    const gate = { id: 'tests', kind: 'tool', command: ['sh', '-c', 'exit 1'], if_exists: 'package.json' };
    expect(await evalOne(gate)).toMatchObject({ passed: true, evidence: { skipped: true } });
    write('package.json', '{}');
    expect((await evalOne(gate)).passed).toBe(false);
  });
});

describe('evaluateGates activity', () => {
  const acts = createGovernanceActivities({ logger: pino({ level: 'silent' }) });
  const evaluateGates = (input: Parameters<typeof acts.evaluateGates>[0]) => acts.evaluateGates(input);

  it('evaluates every gate and passes only when all pass', async () => {
    const res = await evaluateGates({
      workspace: ws,
      phase: 'qa',
      gates: [
        { id: 'ok', kind: 'tool', command: ['true'] },
        {
          id: 'bad',
          kind: 'tool',
          command: ['sh', '-c', 'echo broken; exit 1'],
          on_fail: 'pause_for_approval',
        },
      ],
    });
    expect(res.phase).toBe('qa');
    expect(res.passed).toBe(false);
    expect(res.results.map((r) => [r.id, r.passed, r.on_fail])).toEqual([
      ['ok', true, 'fail'],
      ['bad', false, 'pause_for_approval'],
    ]);
    expect(JSON.stringify(res).length).toBeLessThan(8192);
  });

  it('fails non-retryably on an invalid gate, naming it', async () => {
    await expect(
      evaluateGates({
        workspace: ws,
        phase: 'qa',
        gates: [{ id: 'x', kind: 'tool', command: [], timout: 1 }],
      }),
    ).rejects.toMatchObject({
      type: 'InvalidGate',
      nonRetryable: true,
      message: expect.stringMatching(/gates\[0\]\.command/),
    });
  });

  it('fails non-retryably on a missing workspace', async () => {
    await expect(
      evaluateGates({
        workspace: path.join(ws, 'nope'),
        phase: 'qa',
        gates: [{ id: 'ok', kind: 'tool', command: ['true'] }],
      }),
    ).rejects.toMatchObject({ type: 'WorkspaceNotFound', nonRetryable: true });
  });
});

describe('checkGates (CLI, no run)', () => {
  it('evaluates the layered policy for a phase', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-gov-'));
    fs.writeFileSync(
      path.join(dir, 'default.yaml'),
      'phases:\n  qa:\n    - { id: cov, kind: metric, source: { file: c.json, json_path: pct }, op: ">=", threshold: 80 }\n',
    );
    fs.mkdirSync(path.join(dir, 'clients'));
    fs.writeFileSync(
      path.join(dir, 'clients', 'strict.yaml'),
      'phases:\n  qa:\n    - { id: cov, threshold: 95 }\n',
    );
    write('c.json', '{"pct": 90}');
    expect((await checkGates({ workspace: ws, phase: 'qa', dir })).passed).toBe(true);
    const strict = await checkGates({ workspace: ws, phase: 'qa', dir, client: 'strict' });
    expect(strict.passed).toBe(false);
    expect(strict.results[0]).toMatchObject({ id: 'cov', evidence: { value: 90, threshold: 95 } });
    expect((await checkGates({ workspace: ws, phase: 'dev', dir })).results).toEqual([]);
  });

  it('runs the shipped policy against a workspace', async () => {
    write('src/a.ts', 'export {};\n');
    const r = await checkGates({ workspace: ws, phase: 'design', client: 'acme-corp' });
    expect(r.results.map((x) => x.id).sort()).toEqual(['license-header', 'no-private-keys']);
    expect(r.results.find((x) => x.id === 'license-header')?.passed).toBe(false);
  });
});
