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

    // The issue's own command, as written: `checkpoint rollback CP1`, no run id. Phase two starts again.
    const toCp1 = await cli(['checkpoint', 'rollback', 'CP1']);
    expect(toCp1.code, toCp1.stderr).toBe(0);
    expect(toCp1.stdout.trim()).toBe(`rolled back ${input.runId} to CP1; continuing with two`);
    await waitFor(() => gates.count('two') === 2, 'phase two after the rollback to CP1', 120_000);

    const rolled = await cli(['checkpoint', 'rollback', 'CP0', '--reason', 'start over']);
    expect(rolled.code, rolled.stderr).toBe(0);
    expect(rolled.stdout.trim()).toBe(`rolled back ${input.runId} to CP0; continuing with one`);
    // Phase 1 runs again and waits at its second gate before touching anything.
    await waitFor(() => gates.count('one') === 2, 'phase one again', 120_000);
    expect(exactListing(workspace, ['.orchestrator'])).toEqual(original);
    const s = await queryStatus(t.client, input.runId);
    expect(s.phases.map((p) => p.status)).toEqual(['running', 'pending']);
    expect(s.rollbacks).toMatchObject([{ to: 'CP1' }, { to: 'CP0', reason: 'start over' }]);

    gates.open('one', 2);
    gates.open('two', 3);
    expect(((await t.client.workflow.getHandle(input.runId).result()) as { state: string }).state).toBe(
      'completed',
    );
    // And `checkpoint show CP2`, as written: numbering goes on after a rollback, so CP2 is phase one's
    // checkpoint of its second run.
    const cp2 = await cli(['checkpoint', 'show', 'CP2', '--json']);
    expect(cp2.code, cp2.stderr).toBe(0);
    expect(JSON.parse(cp2.stdout)).toMatchObject({
      id: 'CP2',
      phase: 'one',
      manifest: { checkpoint: 'CP2' },
    });

    // A fork of CP0 starts from the original files and runs every phase.
    const forkWs = path.join(tempDir('orch-v2-fork-'), 'ws');
    const forked = await cli(['run', 'fork', input.runId, '--from', 'CP0', '--workspace', forkWs, '--json']);
    expect(forked.code, forked.stderr).toBe(0);
    const forkId = (JSON.parse(forked.stdout) as { runId: string }).runId;
    await waitFor(() => gates.count('one') === 3, 'the fork runs phase one', 120_000);
    expect(exactListing(forkWs, ['.orchestrator'])).toEqual(original);
    gates.open('one', 3);
    gates.open('two', 4);
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

/** A one-phase spec whose script writes `out` (gated: it waits until the test opens its gate). */
function oneShot(gates: Gates, name: string, project: { name: string; client?: string }, gated: boolean) {
  return ProjectSpecSchema.parse({
    project,
    phases: [
      {
        name: 'only',
        agents: [
          { role: 'dev', backend: 'script', command: gates.script(name, 'echo done > out.txt', gated) },
        ],
        artifacts: [{ pattern: 'out.txt' }],
      },
    ],
  });
}

describe('the v2 commands as written', { timeout: 900_000 }, () => {
  it('budget/governance take --workflow or default to the latest run; run list filters; runs prune; run cancel', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const endedWs = tempDir('orch-v2-ended-');
    const ended = await startRun(t.client, {
      spec: oneShot(gates, 'ended', { name: 'Ended One', client: 'acme-corp' }, false),
      workspace: endedWs,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    expect(((await t.client.workflow.getHandle(ended.runId).result()) as { state: string }).state).toBe(
      'completed',
    );
    const runningWs = tempDir('orch-v2-running-');
    const running = await startRun(t.client, {
      spec: oneShot(gates, 'running', { name: 'Still Running' }, true),
      workspace: runningWs,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('running') === 1, 'the running run waits at its gate', 120_000);

    // `budget set --max-tokens 1000000`, as the issue writes it: the latest run.
    const set = await cli(['budget', 'set', '--max-tokens', '1000000']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout.trim()).toBe(`${running.runId}: run budget is now 1,000,000 tokens`);
    const [status, audit, byRun] = await Promise.all([
      cli(['budget', 'status', '--workflow', running.runId, '--json']),
      cli(['governance', 'audit', '--workflow', running.runId, '--json']),
      cli(['budget', 'status', '--run', ended.runId, '--json']),
    ]);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      runId: running.runId,
      report: { run: { limit: { tokens: 1_000_000 } } },
    });
    expect(byRun.code, byRun.stderr).toBe(0);
    expect(JSON.parse(byRun.stdout)).toMatchObject({ runId: ended.runId });
    expect(audit.code, audit.stderr).toBe(0);
    const entries = JSON.parse(audit.stdout) as { kind: string; details: Record<string, unknown> }[];
    expect(entries.some((e) => e.kind === 'budget')).toBe(true);
    const twice = await cli(['governance', 'audit', '--run', ended.runId, '--workflow', running.runId]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('the run is named twice with different ids');

    // run list --state/--client/--project.
    const ids = async (args: string[]) => {
      const r = await cli(['run', 'list', '--json', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { runId: string }[]).map((x) => x.runId);
    };
    const [byState, byClient, byProject, runningOnly] = await Promise.all([
      ids(['--state', 'completed']),
      ids(['--client', 'acme-corp']),
      ids(['--project', 'still running']),
      ids(['--state', 'running']),
    ]);
    expect(byState).toContain(ended.runId);
    expect(byState).not.toContain(running.runId);
    expect(byClient).toEqual([ended.runId]);
    expect(byProject).toEqual([running.runId]);
    expect(runningOnly).toEqual([running.runId]);

    // runs prune --older-than 0d --dry-run lists the ended runs and deletes nothing.
    const outputsOf = (runId: string) => path.join(t.config.outputsDir, runId);
    const shadowOf = (ws: string) => path.join(ws, '.orchestrator', 'shadow.git');
    for (const p of [
      outputsOf(ended.runId),
      shadowOf(endedWs),
      outputsOf(running.runId),
      shadowOf(runningWs),
    ])
      expect(fs.existsSync(p), p).toBe(true);
    const before = exactListing(t.config.outputsDir, []);
    const dry = await cli(['runs', 'prune', '--older-than', '0d', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout) as {
      dryRun: boolean;
      runs: { runId: string; outputs?: string; shadow?: string }[];
    };
    expect(planned.dryRun).toBe(true);
    expect(planned.runs).toContainEqual({
      runId: ended.runId,
      state: 'completed',
      closedAt: expect.any(String) as string,
      outputs: outputsOf(ended.runId),
      shadow: shadowOf(endedWs),
    });
    expect(planned.runs.map((r) => r.runId)).not.toContain(running.runId);
    expect(exactListing(t.config.outputsDir, [])).toEqual(before);
    expect(fs.existsSync(shadowOf(endedWs))).toBe(true);
    const human = await cli(['runs', 'prune', '--older-than', '7d', '--dry-run']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout.trim()).toBe('nothing to prune');

    // Without --dry-run: the ended runs' outputs and shadow repositories go, the running run's stay.
    const pruned = await cli(['runs', 'prune', '--older-than', '0d']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain(`deleted ${outputsOf(ended.runId)}`);
    expect(fs.existsSync(outputsOf(ended.runId))).toBe(false);
    expect(fs.existsSync(shadowOf(endedWs))).toBe(false);
    expect(fs.readFileSync(path.join(endedWs, 'out.txt'), 'utf8')).toBe('done\n');
    expect(fs.existsSync(outputsOf(running.runId))).toBe(true);
    expect(fs.existsSync(shadowOf(runningWs))).toBe(true);

    // `run cancel` with no id: the latest run, which then ends cancelled; now prune takes it too.
    const cancelled = await cli(['run', 'cancel', '--wait']);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout.trim()).toBe(`${running.runId} cancelled`);
    const again = await cli(['run', 'cancel', running.runId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`run ${running.runId} has already ended (cancelled)`);
    const last = await cli(['runs', 'prune', '--older-than', '0d', '--json']);
    expect(last.code, last.stderr).toBe(0);
    expect((JSON.parse(last.stdout) as { runs: { runId: string }[] }).runs.map((r) => r.runId)).toEqual([
      running.runId,
    ]);
    expect(fs.existsSync(outputsOf(running.runId))).toBe(false);
  });
});

describe('why a phase failed, in plain text', { timeout: 900_000 }, () => {
  it('run start --wait, run status and results name the failed gate with its output and the agent error', async () => {
    const dir = tempDir('orch-v2-intakes-');
    const gateIntake = path.join(dir, 'gate.yaml');
    fs.writeFileSync(
      gateIntake,
      [
        'project: { name: gate-fails }',
        'phases:',
        '  - name: build',
        "    agents: [{ role: dev, backend: script, command: [sh, -c, 'echo x > out.txt'] }]",
        '    artifacts: [out.txt]',
        "    gates: [{ id: smoke, kind: tool, command: [sh, -c, 'echo gate-output-4711; exit 3'], on_fail: fail }]",
      ].join('\n'),
    );
    const agentIntake = path.join(dir, 'agent.yaml');
    fs.writeFileSync(
      agentIntake,
      [
        'project: { name: agent-fails }',
        'phases:',
        '  - name: build',
        '    agents: [{ role: dev, backend: script, command: [/nonexistent/prog-4711] }]',
        '    artifacts: [out.txt]',
      ].join('\n'),
    );
    const [gate, agent] = await Promise.all([
      cli([
        'run',
        'start',
        '--intake',
        gateIntake,
        '--workspace',
        tempDir('orch-v2-g-'),
        '--wait',
        '--run-id',
        'why-gate',
      ]),
      cli([
        'run',
        'start',
        '--intake',
        agentIntake,
        '--workspace',
        tempDir('orch-v2-a-'),
        '--wait',
        '--run-id',
        'why-agent',
      ]),
    ]);
    expect(gate.code, gate.stderr).toBe(1);
    expect(gate.stdout).toMatch(/✗ Step 1\/1 build/);
    expect(gate.stdout).toMatch(/why: gate "smoke".*gate-output-4711/);
    expect(agent.code, agent.stderr).toBe(1);
    expect(agent.stdout).toMatch(/why: agent dev: .*prog-4711/);
    expect(agent.stdout).toMatch(/✗ dev \(dev\) failed ScriptNotFound: script program not found/);

    const [gateStatus, agentStatus, gateResults, agentResults] = await Promise.all([
      cli(['run', 'status', '--workflow', 'why-gate']),
      cli(['run', 'status', 'why-agent']),
      cli(['results', 'why-gate']),
      cli(['results', '--run', 'why-agent']),
    ]);
    expect(gateStatus.code, gateStatus.stderr).toBe(0);
    expect(gateStatus.stdout).toMatch(/why: gate "smoke".*gate-output-4711/);
    // Answered by the query, or (a closed run whose query is slow on a loaded machine) by the run's record:
    // either way the failed phase says why.
    expect(agentStatus.stdout).toMatch(/why: agent dev: ScriptNotFound: script program not found/);
    expect(gateResults.code, gateResults.stderr).toBe(0);
    expect(gateResults.stdout).toContain('build (attempt 1) failed:');
    expect(gateResults.stdout).toMatch(/ {2}- gate "smoke".*gate-output-4711/);
    // The classified type once, not `[ScriptNotFound] ScriptNotFound: …`.
    expect(agentResults.stdout).toMatch(
      / {2}- agent dev: ScriptNotFound: script program not found: \/nonexistent\/prog-4711/,
    );
  });
});
