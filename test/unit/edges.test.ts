/**
 * The small edges of issue #11, without a server: bad workspace paths, oversized run inputs, an
 * unreachable Temporal, a closed stdout. Each gets one clear line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cannotReachTemporal, connectionFailureReason, missingNamespace } from '../../src/connection-error';
import { checkRunInputSize, largestPart, RunInputTooLargeError } from '../../src/run-input-size';
import { checkWorkspacePath, isInside, prepareWorkspace, WorkspacePathError } from '../../src/workspace-path';
import { runCli } from '../harness/cli';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edges-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const messageOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WorkspacePathError);
    return (err as Error).message;
  }
  throw new Error('did not throw');
};

describe('workspace paths', () => {
  it('a path under /proc fails at once instead of hanging in mkdir', () => {
    expect(messageOf(() => prepareWorkspace('/proc/nope/ws'))).toBe(
      'workspace /proc/nope/ws: cannot create /proc/nope (the parent folder does not accept new folders)',
    );
  });

  it('a workspace that is a file, or below a file, is named as such', () => {
    const file = path.join(tmp, 'afile');
    fs.writeFileSync(file, 'x');
    expect(messageOf(() => prepareWorkspace(file))).toBe(`workspace ${file} is a file, not a directory`);
    expect(messageOf(() => checkWorkspacePath(path.join(file, 'ws'), 'fork workspace'))).toBe(
      `fork workspace ${file}/ws: ${file} is a file, not a directory`,
    );
  });

  it('creates missing folders level by level and accepts an existing directory', () => {
    const deep = path.join(tmp, 'a/b/c');
    expect(checkWorkspacePath(deep)).toBe(deep);
    expect(fs.existsSync(path.join(tmp, 'a'))).toBe(false);
    expect(prepareWorkspace(deep)).toBe(deep);
    expect(fs.statSync(deep).isDirectory()).toBe(true);
    expect(prepareWorkspace(deep)).toBe(deep);
  });

  it('isInside tells nested folders from siblings with a common prefix', () => {
    expect(isInside('/w/src/sub', '/w/src')).toBe(true);
    expect(isInside('/w/src', '/w/src')).toBe(true);
    expect(isInside('/w/src-2', '/w/src')).toBe(false);
    expect(isInside('/w', '/w/src')).toBe(false);
  });
});

describe('run input size', () => {
  it('names the part that is too large, before anything is sent', () => {
    const input = {
      runId: 'r',
      spec: { project: { name: 'p' }, requirements: ['short', 'x'.repeat(5 * 1024 * 1024)], phases: [] },
    };
    expect(largestPart(input).path).toBe('spec.requirements[1]');
    let err: unknown;
    try {
      checkRunInputSize(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RunInputTooLargeError);
    expect((err as Error).message).toBe(
      'run input is 5.0 MB, over the 1.0 MB limit for a workflow input; the largest part is intake ' +
        'requirements[1] (5.0 MB): put long text in a file in the workspace and refer to it',
    );
  });

  it('accepts an input under the limit and returns its size', () => {
    expect(checkRunInputSize({ a: 'b' })).toBe(9);
  });
});

describe('unreachable Temporal', () => {
  it('turns raw transport errors into a reason in words', () => {
    const tonic =
      'tonic::transport::Error(Transport, ConnectError(ConnectError("tcp connect error", 127.0.0.1:1, ' +
      'Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))';
    expect(connectionFailureReason(new Error(tonic))).toBe('connection refused');
    expect(connectionFailureReason(new Error('Failed to connect before the deadline'))).toBe(
      'no answer in time',
    );
    expect(connectionFailureReason(new Error('dns error: failed to lookup address information'))).toBe(
      'unknown host',
    );
    expect(cannotReachTemporal('h:1', new Error(tonic))).toBe(
      'cannot reach Temporal at h:1 (TEMPORAL_ADDRESS): connection refused. ' +
        'Start a dev server with `orchestrator dev` or `orchestrator server start`.',
    );
  });

  it('a namespace is named missing only on NOT_FOUND; any other answer, or none, leaves the error as it was', async () => {
    const notFound = Object.assign(new Error('Namespace x is not found.'), { code: 5 });
    const unavailable = Object.assign(new Error('tcp connect error'), { code: 14 });
    expect(await missingNamespace(() => Promise.reject(notFound), 'x', 'h:1')).toBe(
      'namespace "x" does not exist on h:1: create it with ' +
        '`temporal operator namespace create --namespace x --address h:1`, ' +
        'or name another with --namespace or TEMPORAL_NAMESPACE',
    );
    expect(await missingNamespace(() => Promise.resolve({}), 'x', 'h:1')).toBeUndefined();
    expect(await missingNamespace(() => Promise.reject(unavailable), 'x', 'h:1')).toBeUndefined();
    // A server that never answers: nothing is known after the wait.
    expect(await missingNamespace(() => new Promise(() => undefined), 'x', 'h:1', 20)).toBeUndefined();
  });

  it('`orchestrator worker` prints one line, not a tonic::transport::Error', async () => {
    const r = await runCli(['worker'], { TEMPORAL_ADDRESS: '127.0.0.1:1' }, 90_000);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('tonic');
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      'orchestrator: cannot reach Temporal at 127.0.0.1:1 (TEMPORAL_ADDRESS): connection refused. ' +
        'Start a dev server with `orchestrator dev` or `orchestrator server start`.',
    );
  }, 120_000);

  it('`orchestrator run start` prints one line and creates no workspace', async () => {
    const intake = path.join(tmp, 'intake.yaml');
    fs.writeFileSync(
      intake,
      'project: { name: edge }\nrequirements: [r]\n' +
        'phases:\n  - name: one\n    agents: [{ role: a, backend: script, command: ["true"] }]\n',
    );
    const ws = path.join(tmp, 'ws');
    const r = await runCli(
      ['run', 'start', '--intake', intake, '--workspace', ws],
      { TEMPORAL_ADDRESS: '127.0.0.1:1' },
      90_000,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('tonic');
    expect(r.stderr.trim()).toMatch(
      /^orchestrator: cannot reach Temporal at 127\.0\.0\.1:1 \(TEMPORAL_ADDRESS\): connection refused\. Start a dev server with `orchestrator dev` or `orchestrator server start`\.$/,
    );
    expect(fs.existsSync(ws)).toBe(false);
  }, 120_000);
});

describe('a Temporal config file with keys that are ignored', () => {
  it('is named on one stderr line by a command that connects, once, and not by --help', async () => {
    // `namepsace` is misspelt: envconfig ignores it (as the temporal CLI does), so nothing else would say.
    const file = path.join(tmp, 'temporal.toml');
    fs.writeFileSync(file, '[profile.default]\naddress = "127.0.0.1:1"\nnamepsace = "prod"\n');
    const env = { TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: '', ORCHESTRATOR_HOME: tmp };
    const warning = `orchestrator: warning: the Temporal config file ${file} has keys that are ignored (a misspelling?): key(s) unrecognized in profile.default: namepsace`;
    for (const args of [
      ['run', 'list'],
      ['team', 'status', 'some-team'],
    ]) {
      const r = await runCli(args, env, 90_000);
      expect(r.code, args.join(' ')).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0], args.join(' ')).toBe(warning);
      expect(lines.filter((l) => l.includes('warning'))).toHaveLength(1);
      expect(lines.at(-1)).toContain(
        `cannot reach Temporal at 127.0.0.1:1 (${file}: profile.default.address)`,
      );
    }
    for (const args of [['run', 'list', '--help'], ['--version']]) {
      const r = await runCli(args, env);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stderr, args.join(' ')).toBe('');
    }
    // A clean file: no warning.
    fs.writeFileSync(file, '[profile.default]\naddress = "127.0.0.1:1"\n');
    const clean = await runCli(['run', 'list'], env, 90_000);
    expect(clean.stderr).not.toContain('warning');
  }, 240_000);
});

describe('a closed stdout', () => {
  it('ends the command quietly instead of an unhandled EPIPE', async () => {
    const child = spawn(
      process.execPath,
      [path.resolve(import.meta.dirname, '../../bin/orchestrator.js'), 'phases', 'list', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
    );
    // The reader goes away before the command writes anything: every write hits a closed pipe.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).not.toMatch(/EPIPE|Unhandled|at .*\.js/);
    expect(code).toBe(0);
  });
});
