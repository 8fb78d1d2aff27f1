/**
 * Issue 14, the v2 CLI as its users write it, against the real dev server: CP0 (the workspace before
 * phase 1) for rollback and fork, run-scoped commands defaulting to the latest run, `--workflow`.
 * This file runs in a namespace of its own, so "the latest run" is always one of its runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryStatus, startRun } from '../../src/runs';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import { runCli, cliEnv } from '../harness/cli';
import { Gates, waitFor } from '../harness/gates';
import { freshNamespace } from '../harness/namespace';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';
import { exactListing } from '../harness/tree';

/** The CLI starts through tsx: on a loaded two-core machine that alone can take most of a minute. */
const TIMEOUT = 170_000;
let t: TestEnv;
let env: Record<string, string>;
const cli = (args: string[]) => runCli(args, env, TIMEOUT);

beforeAll(async () => {
  process.env.TEMPORAL_NAMESPACE = await freshNamespace('v2cli');
  t = await createTestEnv();
  env = { ...cliEnv(t), TEMPORAL_NAMESPACE: process.env.TEMPORAL_NAMESPACE };
  await t.startWorker();
});
afterAll(async () => t?.close());

/** A user's project folder: text, binary with NUL bytes, an executable, a symlink, nesting, an empty file. */
function userWorkspace(): string {
  const ws = tempDir('orch-v2-ws-');
  fs.writeFileSync(path.join(ws, 'readme.txt'), 'the original readme\n');
  fs.writeFileSync(path.join(ws, 'data.bin'), Buffer.from([0, 1, 2, 255, 0, 10, 13, 0]));
  fs.mkdirSync(path.join(ws, 'bin'));
  fs.writeFileSync(path.join(ws, 'bin/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  fs.mkdirSync(path.join(ws, 'nested/deep'), { recursive: true });
  fs.writeFileSync(path.join(ws, 'nested/deep/conf.json'), '{"a": 1}');
  fs.writeFileSync(path.join(ws, 'empty'), '');
  fs.symlinkSync('readme.txt', path.join(ws, 'link'));
  return ws;
}

function cp0Spec(gates: Gates): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name: 'cp0' },
    phases: [
      {
        name: 'one',
        agents: [
          {
            role: 'dev',
            backend: 'script',
            command: gates.script(
              'one',
              'echo changed > readme.txt && rm data.bin link && chmod 644 bin/run.sh && ' +
                'mkdir -p src && echo new > src/new.txt && echo more >> nested/deep/conf.json',
            ),
          },
        ],
      },
      {
        name: 'two',
        agents: [{ role: 'dev', backend: 'script', command: gates.script('two', 'echo two > two.txt') }],
      },
    ],
  });
}

describe('CP0: the workspace before phase 1', { timeout: 900_000 }, () => {
  it('rollback CP0 (latest run, no id) restores it byte for byte; fork --from CP0 starts from it', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = userWorkspace();
    const original = exactListing(workspace, ['.orchestrator']);
    const input = await startRun(t.client, {
      spec: cp0Spec(gates),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    gates.open('one', 1);
    // Phase 2 waits at its gate: phase 1 has changed the workspace and taken CP1.
    await waitFor(() => gates.count('two') === 1, 'phase two running', 120_000);
    expect(exactListing(workspace, ['.orchestrator'])).not.toEqual(original);

    // `checkpoint list` and `show CP0` with no run id: the latest run, CP0 first.
    const listed = await cli(['checkpoint', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((c) => c.id)).toEqual(['CP0', 'CP1']);
    const shown = await cli(['checkpoint', 'show', 'CP0', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id: 'CP0',
      label: 'baseline',
      phaseIndex: -1,
      manifest: { checkpoint: 'CP0' },
    });

    const rolled = await cli(['checkpoint', 'rollback', 'CP0', '--reason', 'start over']);
    expect(rolled.code, rolled.stderr).toBe(0);
    expect(rolled.stdout.trim()).toBe(`rolled back ${input.runId} to CP0; continuing with one`);
    // Phase 1 runs again and waits at its second gate before touching anything.
    await waitFor(() => gates.count('one') === 2, 'phase one again', 120_000);
    expect(exactListing(workspace, ['.orchestrator'])).toEqual(original);
    const s = await queryStatus(t.client, input.runId);
    expect(s.phases.map((p) => p.status)).toEqual(['running', 'pending']);
    expect(s.rollbacks).toMatchObject([{ to: 'CP0', reason: 'start over' }]);

    gates.open('one', 2);
    gates.open('two', 2);
    expect(((await t.client.workflow.getHandle(input.runId).result()) as { state: string }).state).toBe(
      'completed',
    );

    // A fork of CP0 starts from the original files and runs every phase.
    const forkWs = path.join(tempDir('orch-v2-fork-'), 'ws');
    const forked = await cli(['run', 'fork', input.runId, '--from', 'CP0', '--workspace', forkWs, '--json']);
    expect(forked.code, forked.stderr).toBe(0);
    const forkId = (JSON.parse(forked.stdout) as { runId: string }).runId;
    await waitFor(() => gates.count('one') === 3, 'the fork runs phase one', 120_000);
    expect(exactListing(forkWs, ['.orchestrator'])).toEqual(original);
    gates.open('one', 3);
    gates.open('two', 3);
    const fork = (await t.client.workflow.getHandle(forkId).result()) as {
      state: string;
      checkpoints: { id: string }[];
      baseline?: { id: string };
    };
    expect(fork.state).toBe('completed');
    expect(fork.checkpoints.map((c) => c.id)).toEqual(['CP1', 'CP2']);
    expect(fork.baseline?.id).toBe('CP0');
  });
});
