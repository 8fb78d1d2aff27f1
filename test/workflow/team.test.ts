/**
 * Dynamic teams against the real dev server. The chain runs the real `claude` CLI against the local model
 * server: each agent's first prompt holds `@bash orchestrator team …` directives, so the requests come
 * from inside the agents' own processes, through the CLI, exactly as a model would make them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSessionProcesses } from '../../activities/cli/process';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { parseTasks, type TeamStatus } from '../../src/shared/team';
import { readAuditTrail } from '../../activities/audit';
import { nextProof, spawnAgent, startTeam, stopTeam, teamStatus } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { processesMentioning } from '../harness/processes';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const ROOT = path.resolve(import.meta.dirname, '../..');
const policy = loadHierarchyPolicy(undefined, { agent: { completionGraceS: 5 } });

let t: TestEnv;
let server: ModelServer;

beforeAll(async () => {
  t = await createTestEnv();
  server = await startModelServer();
  const home = tempDir('orch-team-home-');
  await t.startWorker({
    config: {
      ...t.config,
      anthropic: { baseURL: server.url, apiKey: 'sk-test-not-a-secret' },
      agentHome: home,
    },
  });
});
afterAll(async () => {
  await t?.close();
  await server?.close();
});

/** The real CLI, as a user or an agent runs it. */
function cli(args: string[], env: Record<string, string> = {}, input?: string) {
  return execa(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), ...args], {
    reject: false,
    // NO_COLOR: plain text to match on, even under CI=true (which turns picocolors on).
    env: { TEMPORAL_ADDRESS: t.config.temporal.address, LOG_LEVEL: 'warn', NO_COLOR: '1', ...env },
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
}

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
}

describe('team chain with the real claude CLI', () => {
  it('manager requests an engineer, the engineer an intern; the intern is refused; all complete and archive', async () => {
    const workspace = tempDir('orch-team-ws-');
    write(workspace, {
      'eng.md': [
        'Implement the REST API.',
        '@write api.txt endpoints ready',
        '@bash orchestrator team request --role intern --name api-tester --instructions-file intern.md',
        '@bash orchestrator team task done t1',
      ].join('\n'),
      'intern.md': [
        'Test the REST API.',
        '@bash orchestrator team request --role software-engineer --name shadow-dev --instructions-file eng.md',
        '@write tests.txt tests pass',
        '@bash orchestrator team task done t1',
      ].join('\n'),
    });
    const input = await startTeam(t.client, {
      goal: 'Build REST API',
      workspace,
      outputsDir: t.config.outputsDir,
      policy,
      taskQueue: t.taskQueue,
      instructions: {
        manager: [
          'Get the REST API built.',
          '@bash orchestrator team request --role software-engineer --name api-dev --instructions-file eng.md',
          '@bash orchestrator team task done t1',
        ].join('\n'),
        architect: [
          'Design the REST API.',
          '@write architecture.md resources and routes',
          '@bash orchestrator team task done --all',
        ].join('\n'),
      },
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const final = (await handle.result()) as TeamStatus;

    expect(final.state).toBe('completed');
    const rows = final.agents.map((a) => [a.id, a.name, a.role, a.requestedBy, a.depth, a.state]);
    expect(rows, JSON.stringify(final.agents.map((a) => a.error))).toEqual([
      ['manager-1', 'manager', 'manager', 'operator', 0, 'completed'],
      ['architect-1', 'architect', 'architect', 'operator', 0, 'completed'],
      ['software-engineer-1', 'api-dev', 'software-engineer', 'manager-1', 1, 'completed'],
      ['intern-1', 'api-tester', 'intern', 'software-engineer-1', 2, 'completed'],
    ]);
    // The agents did their work, through Claude Code's own tools, in the shared workspace.
    expect(fs.readFileSync(path.join(workspace, 'api.txt'), 'utf8')).toBe('endpoints ready');
    expect(fs.readFileSync(path.join(workspace, 'tests.txt'), 'utf8')).toBe('tests pass');

    // The intern's request was refused by the validator, and the refusal is on record.
    expect(final.refusals).toHaveLength(1);
    expect(final.refusals[0]).toMatchObject({
      source: 'update',
      request: { role: 'software-engineer', name: 'shadow-dev', requestedBy: 'intern-1' },
    });
    expect(final.refusals[0]!.reason).toMatch(/an intern may not request a software-engineer/);
    const shown = await cli(['team', 'status', input.runId]);
    expect(shown.exitCode).toBe(0);
    expect(shown.stdout).toContain(
      'intern-1 → software-engineer "shadow-dev" (update): hierarchy policy: an intern may not request',
    );

    // Completion: directories archived with every task completed, processes gone.
    for (const a of final.agents) {
      expect(a.archivedTo).toBe(path.join(workspace, '.team', `${a.id}-completed`));
      expect(fs.existsSync(path.join(workspace, '.team', a.id))).toBe(false);
      const tasks = parseTasks(fs.readFileSync(path.join(a.archivedTo!, 'tasks.md'), 'utf8'));
      expect(tasks.length).toBeGreaterThan(0);
      expect(tasks.every((x) => x.status === 'completed')).toBe(true);
      for (const f of ['instructions.md', 'session.json'])
        expect(fs.existsSync(path.join(a.archivedTo!, f))).toBe(true);
      expect(a.sessionId).toMatch(/^[0-9a-f-]{36}$/);
      expect(await findSessionProcesses(a.sessionId!)).toEqual([]);
      expect(a.costUsd).toBeGreaterThan(0);
    }
    expect(fs.readFileSync(path.join(final.agents[2]!.archivedTo!, 'instructions.md'), 'utf8')).toContain(
      'orchestrator team request --role intern',
    );

    // The requests were made from inside the agents' processes, through the CLI.
    const transcript = fs.readFileSync(
      path.join(t.config.outputsDir, input.runId, 'agents', 'manager-1.jsonl'),
      'utf8',
    );
    expect(transcript).toContain('orchestrator team request --role software-engineer --name api-dev');
    expect(transcript).toMatch(/software-engineer \\"api-dev\\" started: agent software-engineer-1/);
    const internLog = fs.readFileSync(
      path.join(t.config.outputsDir, input.runId, 'agents', 'intern-1.jsonl'),
      'utf8',
    );
    expect(internLog).toContain(
      'request refused: hierarchy policy: an intern may not request a software-engineer',
    );

    const audit = await readAuditTrail({ outputsDir: t.config.outputsDir, runId: input.runId });
    expect(audit.filter((e) => e.kind === 'spawn').map((e) => e.details.agentId)).toEqual([
      'manager-1',
      'architect-1',
      'software-engineer-1',
      'intern-1',
    ]);
    expect(audit.filter((e) => e.kind === 'spawn_refused')).toHaveLength(1);
  });
});

describe('team requests by signal, bad requests, stop (script backend)', () => {
  it('dedupes signals by name, records refused signals, gives clear CLI errors, and stops every process', async () => {
    const workspace = tempDir('orch-team-ws-');
    write(workspace, { 'ok.md': '- do nothing much' });
    const holdMark = `hold-the-line-${path.basename(workspace)}`;
    const input = await startTeam(t.client, {
      goal: 'Hold the line',
      workspace,
      outputsDir: t.config.outputsDir,
      policy,
      backend: 'script',
      taskQueue: t.taskQueue,
      // The manager's process runs until the team is stopped.
      // Its pid is the sandbox's own (a pid namespace), so the test finds it by a marker in its command line.
      instructions: { manager: `echo $$ > manager.pid; while :; do sleep 0.2; done # ${holdMark}` },
    });
    const { runId } = input;
    await waitFor(() => fs.existsSync(path.join(workspace, 'manager.pid')), 'the manager process');
    expect(processesMentioning(holdMark)).not.toEqual([]);

    // The test acts as the manager with the manager's own secret (from its 0600 key file).
    const creds = {
      agentId: 'manager-1',
      key: fs.readFileSync(path.join(t.config.outputsDir, runId, 'keys', 'manager-1.key'), 'utf8').trim(),
    };
    // The same signal twice (a retried sender, same proof) spawns one agent; a policy-breaking one is refused.
    const script =
      'echo "$ORCHESTRATOR_AGENT_ID $ORCHESTRATOR_RUN_ID" >> spawned.log; echo "hello from sig-dev"';
    const proof = await nextProof(t.client, runId, creds, 'team');
    const req = {
      role: 'software-engineer',
      name: 'sig-dev',
      instructions: script,
      requestedBy: 'manager-1',
      proof,
    };
    await spawnAgent(t.client, runId, req);
    await spawnAgent(t.client, runId, req);
    // The next proof follows the one the team has consumed.
    await waitFor(
      async () => (await teamStatus(t.client, runId)).agents[0]?.proofsUsed === 1,
      'the first proof to be used',
    );
    await spawnAgent(t.client, runId, { role: 'manager', name: 'boss', instructions: script }, creds);
    const s1 = await waitFor(async () => {
      const s = await teamStatus(t.client, runId);
      return (
        s.agents.find((a) => a.name === 'sig-dev')?.state === 'completed' && s.refusals.length === 1 && s
      );
    }, 'the signalled engineer to complete');
    expect(s1.agents.filter((a) => a.name === 'sig-dev')).toHaveLength(1);
    expect(fs.readFileSync(path.join(workspace, 'spawned.log'), 'utf8')).toBe(
      `software-engineer-1 ${runId}\n`,
    );
    expect(s1.refusals[0]).toMatchObject({
      source: 'signal',
      request: { role: 'manager', name: 'boss', requestedBy: 'manager-1' },
      reason:
        'hierarchy policy: a manager may not request a manager (manager may request only software-engineer)',
    });

    // Bad requests from the CLI get one clear line each.
    const env = {
      ORCHESTRATOR_RUN_ID: runId,
      ORCHESTRATOR_AGENT_ID: 'manager-1',
      ORCHESTRATOR_AGENT_KEY: creds.key,
    };
    const [badRole, noFile, noRun] = await Promise.all([
      cli(
        [
          'team',
          'request',
          '--role',
          'enginer',
          '--name',
          'x1',
          '--instructions-file',
          path.join(workspace, 'ok.md'),
        ],
        env,
      ),
      cli(
        [
          'team',
          'request',
          '--role',
          'software-engineer',
          '--name',
          'x2',
          '--instructions-file',
          'missing.md',
        ],
        env,
      ),
      cli(
        [
          'team',
          'request',
          '--role',
          'software-engineer',
          '--name',
          'x3',
          '--instructions-file',
          path.join(workspace, 'ok.md'),
        ],
        {
          ...env,
          ORCHESTRATOR_RUN_ID: 'no-such-team-run',
        },
      ),
    ]);
    // One agent's requests one after another: each carries the next proof of its chain.
    const okReq = await cli(
      [
        'team',
        'request',
        '--role',
        'software-engineer',
        '--name',
        'cli-dev',
        '--instructions-file',
        path.join(workspace, 'ok.md'),
        '--json',
      ],
      env,
    );
    expect(badRole.exitCode).toBe(1);
    expect(badRole.stderr.trim()).toBe(
      'orchestrator: request refused: unknown role "enginer" (roles: manager, architect, software-engineer, intern)',
    );
    expect(noFile.exitCode).toBe(2);
    expect(noFile.stderr.trim()).toMatch(
      /^orchestrator: instructions file not found: missing\.md \(looked for \/.*missing\.md\)$/,
    );
    expect(noRun.exitCode).toBe(1);
    expect(noRun.stderr.trim()).toBe(
      'orchestrator: no team run "no-such-team-run" (is ORCHESTRATOR_RUN_ID right?)',
    );
    expect(okReq.exitCode).toBe(0);
    expect(JSON.parse(okReq.stdout)).toMatchObject({
      agentId: 'software-engineer-2',
      name: 'cli-dev',
      depth: 1,
      duplicate: false,
    });
    const again = await cli(
      [
        'team',
        'request',
        '--role',
        'software-engineer',
        '--name',
        'cli-dev',
        '--instructions-file',
        path.join(workspace, 'ok.md'),
      ],
      env,
    );
    expect(again.stdout).toContain(
      'software-engineer "cli-dev" was requested before: agent software-engineer-2',
    );

    const s2 = await teamStatus(t.client, runId);
    expect(s2.refusals.map((r) => r.reason)).toContain(
      'unknown role "enginer" (roles: manager, architect, software-engineer, intern)',
    );
    // `attach --list` groups by role, with pid and cost; --filter narrows it.
    const list = await cli(['attach', '--list', '--run', runId, '--json']);
    const listed = JSON.parse(list.stdout) as { id: string; role: string; pid?: number; status: string }[];
    expect(listed.find((a) => a.id === 'manager-1')).toMatchObject({
      role: 'manager',
      status: 'running',
      pid: expect.any(Number),
    });
    const filtered = await cli(['attach', '--list', '--run', runId, '--filter', 'engineer']);
    expect(filtered.stdout).toMatch(/^software-engineer \(2\)/);
    expect(filtered.stdout).not.toContain('manager-1');
    // `attach <id>` is a shell in the agent's directory; `--log` prints its output (it has finished).
    const shell = await cli(
      ['attach', 'manager-1', '--run', runId],
      { SHELL: '/bin/sh' },
      'pwd; echo "id=$ORCHESTRATOR_AGENT_ID"\n',
    );
    expect(shell.exitCode).toBe(0);
    expect(shell.stdout).toBe(`${path.join(fs.realpathSync(workspace), '.team', 'manager-1')}\nid=manager-1`);
    const log = await cli(['attach', 'sig-dev', '--log', '--run', runId]);
    expect(log.exitCode).toBe(0);
    expect(log.stdout).toContain('hello from sig-dev');

    await stopTeam(t.client, runId, 'test over');
    const final = (await t.client.workflow.getHandle(runId).result()) as TeamStatus;
    expect(final.state).toBe('stopped');
    expect(final.agents.find((a) => a.id === 'manager-1')?.state).toBe('stopped');
    // A stopped agent's directory stays, with the outcome recorded.
    const session = JSON.parse(
      fs.readFileSync(path.join(workspace, '.team', 'manager-1', 'session.json'), 'utf8'),
    );
    expect(session).toMatchObject({ state: 'stopped', stopReason: 'test over' });
    expect(final.agents.find((a) => a.id === 'architect-1')?.state).toBe('completed');
    // The manager's process group was ended before the run completed.
    expect(processesMentioning(holdMark)).toEqual([]);
    // `track` on a finished run prints the final dashboard once.
    const tracked = await cli(['track', runId]);
    expect(tracked.exitCode).toBe(0);
    expect(tracked.stdout).toContain(`run ${runId} · stopped`);
  });
});

describe('team start from the CLI', () => {
  it('starts a team that completes, shows its status, and refuses to stop a finished run', async () => {
    const workspace = tempDir('orch-team-ws-');
    write(workspace, { 'm.sh': 'echo managed > managed.txt' });
    const env = { ORCHESTRATOR_TASK_QUEUE: t.taskQueue, ORCHESTRATOR_OUTPUTS_DIR: t.config.outputsDir };
    const started = await cli(
      [
        'team',
        'start',
        'Quick job',
        '--backend',
        'script',
        '--workspace',
        workspace,
        '--engineers',
        '1',
        '--instructions',
        `manager=${path.join(workspace, 'm.sh')}`,
        '--json',
      ],
      env,
    );
    expect(started.exitCode, started.stderr).toBe(0);
    const { runId } = JSON.parse(started.stdout) as { runId: string };
    expect(runId).toMatch(/^team-quick-job-[0-9a-f]{6}$/);
    const final = (await t.client.workflow.getHandle(runId).result()) as TeamStatus;
    expect(final.agents.map((a) => `${a.id}:${a.state}`)).toEqual([
      'manager-1:completed',
      'architect-1:completed',
      'software-engineer-1:completed',
    ]);
    expect(fs.readFileSync(path.join(workspace, 'managed.txt'), 'utf8')).toBe('managed\n');
    const status = await cli(['team', 'status', runId, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ runId, state: 'completed', goal: 'Quick job' });
    const stop = await cli(['team', 'stop', runId]);
    expect(stop.exitCode).toBe(1);
    expect(stop.stderr.trim()).toBe(`orchestrator: team run "${runId}" has ended (completed)`);
    const badRole = await cli(
      ['team', 'start', 'x', '--instructions', `wizard=${path.join(workspace, 'm.sh')}`],
      env,
    );
    expect(badRole.exitCode).toBe(2);
    expect(badRole.stderr.trim()).toBe(
      'orchestrator: --instructions: unknown role "wizard" (roles: manager, architect, software-engineer, intern)',
    );
  });
});
