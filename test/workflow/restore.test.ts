/**
 * Issue #11 (exact restores, truthful state, small edges) against the real dev server: a rollback and a
 * fork bring back a nested git repository and a 600-mode file exactly; every checkpoint keeps its own
 * manifest; manifest, `run status`, `run list` and the status query agree with the server on completed,
 * failed, cancelled and terminated runs; outputs go to the folder recorded at run start.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointsQuery, statusQuery } from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import { stopTeamSignal, type TeamStatus } from '../../src/shared/team';
import { listRuns, queryStatus, rollbackRun, startRun } from '../../src/runs';
import { stopTeam, teamStatus } from '../../src/teams';
import { runCli, cliEnv } from '../harness/cli';
import { Gates, waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';
import { exactListing } from '../harness/tree';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** The CLI starts through tsx: on a loaded two-core machine that alone can take most of a minute. */
const cli = (args: string[], env: Record<string, string>) => runCli(args, env, 170_000);
let t: TestEnv;
/** The outputs folder runs record at start; the worker's own ORCHESTRATOR_OUTPUTS_DIR is another one. */
let recorded: string;

beforeAll(async () => {
  t = await createTestEnv();
  recorded = tempDir('orch-recorded-outputs-');
  await t.startWorker();
});
afterAll(async () => t?.close());

const GIT = 'git -c user.name=a -c user.email=a@b -c init.defaultBranch=main';

function exactSpec(gates: Gates): ProjectSpec {
  const phase = (name: string, work: string, gated: boolean) => ({
    name,
    agents: [{ role: 'dev', backend: 'script', command: gates.script(name, work, gated) }],
  });
  return ProjectSpecSchema.parse({
    project: { name: 'exact restore' },
    phases: [
      phase(
        'setup',
        `mkdir -p vendor/lib && cd vendor/lib && ${GIT} init -q && echo v1 > lib.txt && ${GIT} add . && ` +
          `${GIT} commit -qm v1 && cd ../.. && echo key > secret.key && chmod 600 secret.key`,
        false,
      ),
      phase(
        'change',
        `cd vendor/lib && echo v2 > lib.txt && echo new > new.txt && ${GIT} add . && ${GIT} commit -qm v2 && ` +
          'cd ../.. && chmod 644 secret.key',
        true,
      ),
      phase('final', 'echo done > done.txt', true),
    ],
  });
}

describe('exact restores', { timeout: 600_000 }, () => {
  it('rollback and fork restore a nested repository and a 600 file exactly; checkpoint show shows its own manifest', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: exactSpec(gates),
      workspace,
      outputsDir: recorded,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    // Phase 2 waits at its gate before touching anything: the workspace is exactly CP1.
    await waitFor(
      async () =>
        (await handle.query(checkpointsQuery)).some((c) => c.id === 'CP1') && gates.count('change') === 1,
      'CP1',
    );
    const atCp1 = exactListing(workspace);
    expect(atCp1.some((l) => l.startsWith('f secret.key 600 '))).toBe(true);
    expect(atCp1.some((l) => l.startsWith('f vendor/lib/.git/HEAD '))).toBe(true);
    gates.open('change', 1);
    await waitFor(() => gates.count('final') === 1, 'phase 3 running');
    expect(fs.readFileSync(path.join(workspace, 'vendor/lib/lib.txt'), 'utf8')).toBe('v2\n');

    await rollbackRun(t.client, input.runId, 'CP1', 'test: exact');
    await waitFor(() => gates.count('change') === 2, 'phase 2 rerun');
    expect(exactListing(workspace)).toEqual(atCp1);
    const lib = path.join(workspace, 'vendor/lib');
    expect((await execa('git', ['log', '--format=%s'], { cwd: lib })).stdout).toBe('v1');
    expect((await execa('git', ['status', '--porcelain'], { cwd: lib })).stdout).toBe('');

    gates.open('change', 2);
    gates.open('final', 2);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');

    // CP2 was rolled back and the rerun of phase 2 took CP3: each shows its own manifest.
    const env = { ...cliEnv(t), ORCHESTRATOR_OUTPUTS_DIR: tempDir('orch-cli-outputs-') };
    const cps = await handle.query(checkpointsQuery);
    expect(cps.map((c) => `${c.id}:${c.phase}${c.rolledBack ? ':rolled_back' : ''}`)).toEqual([
      'CP1:setup',
      'CP2:change:rolled_back',
      'CP3:change',
      'CP4:final',
    ]);
    for (const id of ['CP2', 'CP3']) {
      const shown = await cli(['checkpoint', 'show', input.runId, id, '--json'], env);
      expect(shown.code, shown.stderr).toBe(0);
      const s = JSON.parse(shown.stdout) as {
        commit: string;
        manifest: { checkpoint: string; commit: string };
      };
      expect(s.manifest.checkpoint).toBe(id);
      expect(s.manifest.commit).toBe(cps.find((c) => c.id === id)!.commit);
    }

    // Outputs: everything under the folder recorded at start, nothing under the worker's own.
    expect(fs.existsSync(path.join(recorded, input.runId, 'manifest.json'))).toBe(true);
    expect(fs.readdirSync(path.join(recorded, input.runId, 'agents')).length).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(t.config.outputsDir, input.runId))).toBe(false);

    // A fork into the source workspace is refused before anything starts, and leaves no folder.
    const inside = await cli(
      ['run', 'fork', input.runId, '--from', 'CP1', '--workspace', path.join(workspace, 'sub')],
      env,
    );
    expect(inside.code).toBe(2);
    expect(inside.stderr.trim()).toBe(
      `orchestrator: fork workspace ${path.join(workspace, 'sub')} overlaps the source workspace ${workspace}: choose a folder outside it`,
    );
    expect(fs.existsSync(path.join(workspace, 'sub'))).toBe(false);

    // A fork from CP1: phase 2 waits at its gate, so the fork's workspace is exactly CP1.
    const forkWs = path.join(tempDir('orch-fork-'), 'ws');
    const forked = await cli(
      ['run', 'fork', input.runId, '--from', 'CP1', '--workspace', forkWs, '--json'],
      env,
    );
    expect(forked.code, forked.stderr).toBe(0);
    const forkId = (JSON.parse(forked.stdout) as { runId: string }).runId;
    await waitFor(() => gates.count('change') === 3, 'fork phase 2 started');
    expect(exactListing(forkWs)).toEqual(atCp1);
    expect(
      (await execa('git', ['log', '--format=%s'], { cwd: path.join(forkWs, 'vendor/lib') })).stdout,
    ).toBe('v1');
    await t.client.workflow.getHandle(forkId).terminate('test over');
  });
});

/** Every view of a run's end, from the server, our client, the CLI, the raw query and the manifest. */
async function views(runId: string) {
  const handle = t.client.workflow.getHandle(runId);
  const server = (await handle.describe()).status.name;
  const settled = await queryStatus(t.client, runId);
  const viaCli = await cli(['run', 'status', runId, '--json'], cliEnv(t));
  const listed = (await listRuns(t.client, 200)).find((r) => r.runId === runId);
  const manifest = JSON.parse(
    fs.readFileSync(path.join(settled.outputsDir, runId, 'manifest.json'), 'utf8'),
  ) as { status: string };
  const raw: RunStatus = await handle.query(statusQuery);
  return {
    server,
    status: settled.state,
    cli: (JSON.parse(viaCli.stdout) as RunStatus).state,
    list: listed?.state,
    manifest: manifest.status,
    query: raw.state,
  };
}

function sleepySpec(name: string): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name },
    phases: [
      {
        name: 'quick',
        agents: [{ role: 'dev', backend: 'script', command: ['sh', '-c', 'echo a > a.txt'] }],
      },
      { name: 'slow', agents: [{ role: 'dev', backend: 'script', command: ['sleep', '60'] }] },
    ],
  });
}

describe('truthful state', { timeout: 600_000 }, () => {
  it('completed, failed (through an activity), cancelled and terminated runs: every view agrees with the server', async () => {
    const start = (spec: ProjectSpec, extra: Partial<Parameters<typeof startRun>[1]> = {}) =>
      startRun(t.client, {
        spec,
        workspace: tempDir('orch-ws-'),
        outputsDir: recorded,
        taskQueue: t.taskQueue,
        ...extra,
      });

    const done = await start(
      ProjectSpecSchema.parse({
        project: { name: 'done' },
        phases: [{ name: 'one', agents: [{ role: 'dev', backend: 'script', command: ['true'] }] }],
      }),
    );
    await t.client.workflow.getHandle(done.runId).result();
    expect(await views(done.runId)).toEqual({
      server: 'COMPLETED',
      status: 'completed',
      cli: 'completed',
      list: 'completed',
      manifest: 'completed',
      query: 'completed',
    });

    // A fork whose target filled up after the client's check: materializeCheckpoint fails for good.
    const src = t.client.workflow.getHandle(done.runId);
    const cp = (await src.query(checkpointsQuery))[0]!;
    const busy = tempDir('orch-busy-');
    fs.writeFileSync(path.join(busy, 'mine.txt'), 'x');
    const failed = await start(sleepySpec('failed'), {
      workspace: busy,
      forkedFrom: {
        runId: done.runId,
        checkpoint: cp.id,
        sourceWorkspace: done.workspace,
        commit: cp.commit,
        phaseIndex: 0,
      },
    });
    await expect(t.client.workflow.getHandle(failed.runId).result()).rejects.toThrow();
    expect(await views(failed.runId)).toEqual({
      server: 'FAILED',
      status: 'failed',
      cli: 'failed',
      list: 'failed',
      manifest: 'failed',
      query: 'failed',
    });

    const cancelled = await start(sleepySpec('cancelled'));
    const ch = t.client.workflow.getHandle(cancelled.runId);
    await waitFor(async () => (await ch.query(statusQuery)).currentPhase === 'slow', 'slow phase');
    await ch.cancel();
    await expect(ch.result()).rejects.toThrow();
    expect(await views(cancelled.runId)).toEqual({
      server: 'CANCELLED',
      status: 'cancelled',
      cli: 'cancelled',
      list: 'cancelled',
      manifest: 'cancelled',
      query: 'cancelled',
    });

    const terminated = await start(sleepySpec('terminated'));
    const th = t.client.workflow.getHandle(terminated.runId);
    await waitFor(async () => (await th.query(statusQuery)).currentPhase === 'slow', 'slow phase');
    await th.terminate('test');
    // The workflow never sees a termination: its own query still says running; every reader says terminated.
    expect(await views(terminated.runId)).toEqual({
      server: 'TERMINATED',
      status: 'terminated',
      cli: 'terminated',
      list: 'terminated',
      manifest: 'terminated',
      query: 'running',
    });
  });
});

describe('small edges, one line each', { timeout: 600_000 }, () => {
  function intake(dir: string, requirement = 'r'): string {
    const file = path.join(dir, 'intake.yaml');
    fs.writeFileSync(
      file,
      `project: { name: edge }\nrequirements: [${JSON.stringify(requirement)}]\n` +
        'phases:\n  - name: one\n    agents: [{ role: a, backend: script, command: ["true"] }]\n',
    );
    return file;
  }

  it('bad workspaces, a 5 MB requirement', async () => {
    const dir = tempDir('orch-edge-');
    const env = cliEnv(t);
    const proc = await cli(['run', 'start', '--intake', intake(dir), '--workspace', '/proc/nope/ws'], env);
    expect(proc.code).toBe(2);
    expect(proc.stderr.trim()).toBe(
      'orchestrator: workspace /proc/nope/ws: cannot create /proc/nope (the parent folder does not accept new folders)',
    );
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const isFile = await cli(['run', 'start', '--intake', intake(dir), '--workspace', file], env);
    expect(isFile.code).toBe(2);
    expect(isFile.stderr.trim()).toBe(`orchestrator: workspace ${file} is a file, not a directory`);

    const big = await cli(
      [
        'run',
        'start',
        '--intake',
        intake(dir, 'x'.repeat(5 * 1024 * 1024)),
        '--workspace',
        path.join(dir, 'ws'),
      ],
      env,
    );
    expect(big.code).toBe(2);
    expect(big.stderr.trim()).toBe(
      'orchestrator: run input is 5.0 MB, over the 1.0 MB limit for a workflow input; the largest part is ' +
        'intake requirements[0] (5.0 MB): put long text in a file in the workspace and refer to it',
    );
  });

  it('`run start … | head -1` ends quietly', async () => {
    const dir = tempDir('orch-edge-');
    const child = spawn(
      process.execPath,
      [
        path.join(ROOT, 'bin/orchestrator.js'),
        'run',
        'start',
        '--intake',
        intake(dir),
        '--workspace',
        path.join(dir, 'ws'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...cliEnv(t), LOG_LEVEL: 'warn' } },
    );
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).not.toMatch(/EPIPE|Unhandled|at .*\.js/);
    expect(code).toBe(0);
  });

  it('a stopTeam signal with a garbage payload is refused; a real one stops the team', async () => {
    const workspace = tempDir('orch-team-ws-');
    fs.writeFileSync(path.join(workspace, 'm.sh'), 'sleep 120');
    const started = await cli(
      [
        'team',
        'start',
        'Stop me',
        '--backend',
        'script',
        '--workspace',
        workspace,
        '--instructions',
        `manager=${path.join(workspace, 'm.sh')}`,
        '--json',
      ],
      cliEnv(t),
    );
    expect(started.code, started.stderr).toBe(0);
    const { runId } = JSON.parse(started.stdout) as { runId: string };
    const handle = t.client.workflow.getHandle(runId);
    await waitFor(
      async () => (await teamStatus(t.client, runId)).agents.some((a) => a.state === 'running'),
      'team running',
    );
    for (const garbage of ['garbage', 42, { reason: 7 }, { stop: true }]) {
      await handle.signal(stopTeamSignal, garbage as never);
    }
    const s = await waitFor(async () => {
      const st = await teamStatus(t.client, runId);
      const refused = st.audit.filter((e) => e.details.event === 'team_stop_refused');
      return refused.length === 4 ? st : undefined;
    }, 'refusals recorded');
    expect(s.state).toBe('running');
    expect(s.audit.find((e) => e.details.event === 'team_stop_refused')?.details.reason).toMatch(
      /^stopTeam refused: payload: /,
    );
    await stopTeam(t.client, runId, 'test over');
    expect(((await handle.result()) as TeamStatus).state).toBe('stopped');
  });
});
