import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  OUTPUT_CAP_BYTES,
  createToolActivities,
  executeTool,
  toolDefinitions,
  type ToolResult,
} from '../../activities/tools';

/** A mock activity environment that does not print the failures these tests provoke on purpose. */
const mockEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR', () => undefined) });

let ws: string;
let outside: string;

beforeEach(() => {
  ws = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tools-ws-')));
  outside = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tools-outside-')));
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'top secret');
});
afterEach(() => {
  fs.rmSync(ws, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

const run = (name: string, input: unknown) => executeTool(name, input, { workspace: ws });

/**
 * Host pids of live (not zombie) processes whose command line contains `marker`. Inside the sandbox a
 * command sees its own pid namespace, so the pids it could print mean nothing out here.
 */
function runningWith(marker: string): number[] {
  return fs.readdirSync('/proc').flatMap((e) => {
    if (!/^\d+$/.test(e)) return [];
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
      return cmd.includes(marker) && !zombie ? [Number(e)] : [];
    } catch {
      return [];
    }
  });
}

describe('file tools', () => {
  it('writes (creating parents) and reads back', async () => {
    expect(await run('write_file', { path: 'src/deep/a.txt', content: 'héllo\n' })).toEqual({
      ok: true,
      output: 'wrote 7 bytes to src/deep/a.txt',
    });
    expect(await run('read_file', { path: 'src/deep/a.txt' })).toEqual({ ok: true, output: 'héllo\n' });
    // An absolute path inside the workspace is fine.
    expect((await run('read_file', { path: path.join(ws, 'src/deep/a.txt') })).ok).toBe(true);
  });

  it('reports a missing file as an error result', async () => {
    const r = await run('read_file', { path: 'nope.txt' });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/no such file/);
  });

  it('caps what it returns of a big file', async () => {
    fs.writeFileSync(path.join(ws, 'big.txt'), 'x'.repeat(OUTPUT_CAP_BYTES * 4));
    const r = await run('read_file', { path: 'big.txt' });
    expect(r.ok).toBe(true);
    expect(r.output.length).toBeLessThan(OUTPUT_CAP_BYTES + 200);
    expect(r.output).toMatch(/bytes omitted/);
  });

  it('lists files by glob, skipping node_modules and .git', async () => {
    for (const f of ['a.ts', 'src/b.ts', 'src/c.md', 'node_modules/x/i.ts', '.git/HEAD']) {
      fs.mkdirSync(path.dirname(path.join(ws, f)), { recursive: true });
      fs.writeFileSync(path.join(ws, f), '');
    }
    expect(await run('list_files', {})).toEqual({ ok: true, output: 'a.ts\nsrc/b.ts\nsrc/c.md' });
    expect(await run('list_files', { pattern: 'src/*.ts' })).toEqual({ ok: true, output: 'src/b.ts' });
  });

  it('searches by regular expression with line numbers', async () => {
    fs.mkdirSync(path.join(ws, 'src'));
    fs.writeFileSync(path.join(ws, 'src/a.ts'), 'const a = 1;\nexport function foo() {}\n');
    fs.writeFileSync(path.join(ws, 'notes.md'), 'foo in markdown\n');
    expect(await run('search', { pattern: 'function \\w+', glob: 'src/**' })).toEqual({
      ok: true,
      output: 'src/a.ts:2: export function foo() {}',
    });
    expect((await run('search', { pattern: 'foo' })).output.split('\n')).toHaveLength(2);
    const bad = await run('search', { pattern: '(' });
    expect(bad.ok).toBe(false);
    expect(bad.error).toMatch(/invalid regular expression/);
  });

  it('rejects unknown tools and invalid input with a message naming the field', async () => {
    expect(await run('rm_rf', {})).toMatchObject({
      ok: false,
      error: expect.stringMatching(/unknown tool "rm_rf"/),
    });
    expect(await run('write_file', { path: 'a' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/invalid input for write_file: content:/),
    });
  });
});

describe('workspace confinement', () => {
  it('refuses .. and absolute paths outside', async () => {
    for (const p of ['../x.txt', 'a/../../x.txt', path.join(outside, 'secret.txt'), '/etc/passwd']) {
      const r = await run('read_file', { path: p });
      expect(r, p).toMatchObject({ ok: false, error: expect.stringMatching(/outside the workspace/) });
    }
    const w = await run('write_file', { path: '../escape.txt', content: 'x' });
    expect(w.ok).toBe(false);
    expect(fs.existsSync(path.join(ws, '..', 'escape.txt'))).toBe(false);
  });

  it('refuses symlink escapes for reads, writes and searches', async () => {
    fs.symlinkSync(outside, path.join(ws, 'link'));
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(ws, 'secret-link.txt'));
    expect(await run('read_file', { path: 'link/secret.txt' })).toMatchObject({ ok: false });
    expect(await run('read_file', { path: 'secret-link.txt' })).toMatchObject({ ok: false });
    expect(await run('write_file', { path: 'link/new.txt', content: 'x' })).toMatchObject({ ok: false });
    expect(fs.existsSync(path.join(outside, 'new.txt'))).toBe(false);
    const s = await run('search', { pattern: 'secret' });
    expect(s.output).not.toContain('top secret');
  });

  it('refuses writing through a dangling symlink', async () => {
    fs.symlinkSync(path.join(outside, 'later.txt'), path.join(ws, 'dangling.txt'));
    const r = await run('write_file', { path: 'dangling.txt', content: 'x' });
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/dangling symlink/) });
    expect(fs.existsSync(path.join(outside, 'later.txt'))).toBe(false);
  });

  it('refuses escaping globs and command cwds', async () => {
    expect(await run('list_files', { pattern: '../*' })).toMatchObject({ ok: false });
    expect(await run('search', { pattern: 'x', glob: '/etc/*' })).toMatchObject({ ok: false });
    expect(await run('run_command', { argv: ['pwd'], cwd: '..' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/outside the workspace/),
    });
  });
});

describe('run_command', () => {
  it('runs without a shell in the workspace', async () => {
    fs.mkdirSync(path.join(ws, 'sub'));
    expect(await run('run_command', { argv: ['echo', '$HOME', '&&', 'x'] })).toEqual({
      ok: true,
      output: '$HOME && x\n',
    });
    expect(await run('run_command', { argv: ['pwd'], cwd: 'sub' })).toEqual({
      ok: true,
      output: `${ws}/sub\n`,
    });
  });

  it('reports exit codes, missing programs, and never passes the API key on', async () => {
    expect(await run('run_command', { argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] })).toEqual({
      ok: false,
      output: 'out\nerr\n',
      error: 'exit code 3',
    });
    const missing = await run('run_command', { argv: ['definitely-not-a-program-xyz'] });
    expect(missing.ok).toBe(false);
    expect(missing.error).toMatch(/ENOENT|not found|No such file/i);

    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-should-not-leak');
    try {
      const r = await run('run_command', { argv: ['sh', '-c', 'echo key=${ANTHROPIC_API_KEY:-unset}'] });
      expect(r.output).toBe('key=unset\n');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('caps huge output, keeping head and tail', async () => {
    const r = await run('run_command', {
      argv: ['sh', '-c', 'echo START; head -c 300000 /dev/zero | tr "\\0" a; echo; echo END'],
    });
    expect(r.ok).toBe(true);
    expect(r.output.length).toBeLessThan(OUTPUT_CAP_BYTES + 200);
    expect(r.output.startsWith('START\n')).toBe(true);
    expect(r.output.endsWith('END\n')).toBe(true);
    expect(r.output).toMatch(/\[… \d+ bytes omitted …\]/);
  });

  it('kills the whole process group on timeout', async () => {
    const started = Date.now();
    const r = await run('run_command', {
      argv: ['sh', '-c', 'sleep 30.4711 & echo $! > bg.pid; sleep 30'],
      timeout_s: 0.5,
    });
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/timed out after 0.5s/) });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(fs.existsSync(path.join(ws, 'bg.pid'))).toBe(true);
    expect(runningWith('30.4711')).toEqual([]);
  });
});

describe('git tool', () => {
  it('shows status and diff, and commits all changes', async () => {
    expect((await run('git', { op: 'status' })).ok).toBe(false); // not a repository yet
    expect((await run('run_command', { argv: ['git', 'init', '-q'] })).ok).toBe(true);
    fs.writeFileSync(path.join(ws, 'a.txt'), 'one\n');
    expect((await run('git', { op: 'status' })).output).toContain('?? a.txt');
    expect(await run('git', { op: 'commit' })).toMatchObject({
      ok: false,
      error: 'git commit needs a message',
    });
    const c = await run('git', { op: 'commit', message: 'first' });
    expect(c.ok, c.output).toBe(true);
    fs.writeFileSync(path.join(ws, 'a.txt'), 'two\n');
    expect((await run('git', { op: 'diff' })).output).toContain('+two');
    const log = await run('run_command', { argv: ['git', 'log', '--format=%an %s'] });
    expect(log.output).toBe('Orchestrator Agent first\n');
  });
});

describe('runTool activity', () => {
  const { runTool } = createToolActivities({ logger: pino({ level: 'silent' }) });

  it('runs a tool in an activity context', async () => {
    const env = mockEnv();
    const r: ToolResult = await env.run(runTool, {
      workspace: ws,
      name: 'write_file',
      input: { path: 'x', content: 'y' },
    });
    expect(r.ok).toBe(true);
    expect(fs.readFileSync(path.join(ws, 'x'), 'utf8')).toBe('y');
  });

  it('fails non-retryably for a malformed activity input (a workflow bug)', async () => {
    const env = mockEnv();
    const err = await env
      .run(runTool, { workspace: 'relative/dir', name: 'read_file', input: {} })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({
      type: 'InvalidToolInput',
      nonRetryable: true,
      message: 'workspace: must be an absolute path',
    });
  });

  it('kills a running command when the activity is cancelled', async () => {
    const env = mockEnv();
    const started = Date.now();
    const pending = env.run(runTool, {
      workspace: ws,
      name: 'run_command',
      input: { argv: ['sleep', '30'] },
    });
    setTimeout(() => env.cancel(), 300);
    const r = await pending;
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/cancelled/) });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('toolDefinitions', () => {
  it('describes every tool with an object JSON schema listing its required fields', () => {
    expect(toolDefinitions.map((t) => t.name)).toEqual([
      'read_file',
      'write_file',
      'list_files',
      'search',
      'run_command',
      'git',
      'sql',
    ]);
    for (const t of toolDefinitions) {
      expect(t.input_schema.type).toBe('object');
      expect(t.description.length).toBeGreaterThan(10);
    }
    const write = toolDefinitions.find((t) => t.name === 'write_file');
    expect(write?.input_schema.required).toEqual(['path', 'content']);
    const cmd = toolDefinitions.find((t) => t.name === 'run_command');
    expect(cmd?.input_schema.properties).toMatchObject({
      argv: { type: 'array', items: { type: 'string' } },
    });
  });
});
