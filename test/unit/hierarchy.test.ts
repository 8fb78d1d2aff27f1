/**
 * The hierarchy policy (config/team/hierarchy.yaml and its loader), the spawn-request check the team
 * workflow's validator runs, tasks.md parsing and editing, the persona text and the agent directories.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createTeamActivities, markTasksInText } from '../../activities/team';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { ConfigError } from '../../config/errors';
import {
  checkSpawnRequest,
  parseTasks,
  renderPersona,
  tasksFromInstructions,
  type TeamAgentRow,
  type TeamView,
} from '../../src/shared/team';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-hierarchy-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const policy = loadHierarchyPolicy();

function agent(id: string, role: string, depth: number, over: Partial<TeamAgentRow> = {}) {
  return { id, name: id, role, depth, requestedBy: 'user', state: 'running' as const, ...over };
}

function team(...agents: ReturnType<typeof agent>[]): TeamView {
  return { state: 'running', agents };
}

const base = team(agent('manager-1', 'manager', 0), agent('architect-1', 'architect', 0));
const req = (over: Record<string, unknown> = {}) => ({
  role: 'software-engineer',
  name: 'api-dev',
  instructions: '- Build the API',
  requestedBy: 'manager-1',
  ...over,
});

function yamlFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'policy-'));
  const file = path.join(dir, 'hierarchy.yaml');
  fs.writeFileSync(file, text);
  return file;
}

describe('the default hierarchy policy', () => {
  it('loads with personas, limits and the default request rights', () => {
    expect(policy.maxTeamSize).toBe(10);
    expect(policy.maxRequestDepth).toBe(2);
    expect(policy.roles.manager?.canRequest).toEqual(['software-engineer']);
    expect(policy.roles.architect?.canRequest).toEqual(['software-engineer']);
    expect(policy.roles['software-engineer']?.canRequest).toEqual(['intern']);
    expect(policy.roles.intern?.canRequest).toEqual([]);
    expect(policy.roles.manager?.persona).toMatch(/You lead the team/);
    expect(policy.agent.maxRounds).toBe(3);
    expect(policy.agent.permissionMode).toBe('acceptEdits');
  });

  it('lets the manager and the architect request engineers, and engineers request interns', () => {
    expect(checkSpawnRequest(policy, base, req())).toMatchObject({ ok: true });
    expect(checkSpawnRequest(policy, base, req({ requestedBy: 'architect-1' }))).toMatchObject({ ok: true });
    const withEng = team(
      ...base.agents.map((a) => ({ ...a })),
      agent('software-engineer-1', 'software-engineer', 1),
    );
    expect(
      checkSpawnRequest(
        policy,
        withEng,
        req({ role: 'intern', name: 'helper', requestedBy: 'software-engineer-1' }),
      ),
    ).toMatchObject({ ok: true });
  });

  it('refuses everything else with a reason that names the rule', () => {
    const t = team(
      agent('manager-1', 'manager', 0),
      agent('software-engineer-1', 'software-engineer', 1),
      agent('intern-1', 'intern', 2),
    );
    const refuse = (r: Record<string, unknown>) => {
      const out = checkSpawnRequest(policy, t, req(r));
      expect(out.ok).toBe(false);
      return out.ok ? '' : out.reason;
    };
    expect(refuse({ requestedBy: 'intern-1', name: 'x' })).toBe(
      'hierarchy policy: an intern may not request a software-engineer (intern may not request teammates)',
    );
    expect(refuse({ role: 'manager', name: 'boss' })).toMatch(/manager may request only software-engineer/);
    expect(refuse({ role: 'enginer' })).toBe(
      'unknown role "enginer" (roles: manager, architect, software-engineer, intern)',
    );
    expect(refuse({ requestedBy: 'ghost-1' })).toBe('requester "ghost-1" is not an agent of this team');
    expect(refuse({ name: 'bad name!' })).toMatch(/^invalid request: name: must be letters, digits/);
    expect(refuse({ instructions: '' })).toMatch(/instructions: must not be empty/);
  });

  it('limits request depth and team size', () => {
    const deep = { ...policy, maxRequestDepth: 1 };
    const t = team(agent('manager-1', 'manager', 0), agent('software-engineer-1', 'software-engineer', 1));
    const out = checkSpawnRequest(
      deep,
      t,
      req({ role: 'intern', name: 'i', requestedBy: 'software-engineer-1' }),
    );
    expect(out).toEqual({
      ok: false,
      reason: 'hierarchy policy: request depth 2 exceeds max_request_depth 1',
    });

    const small = { ...policy, maxTeamSize: 2 };
    expect(checkSpawnRequest(small, base, req())).toEqual({
      ok: false,
      reason: 'hierarchy policy: the team is full (2 active agents, max_team_size 2)',
    });
    // Finished agents do not count.
    const done = team(
      agent('manager-1', 'manager', 0),
      agent('architect-1', 'architect', 0, { state: 'completed' }),
    );
    expect(checkSpawnRequest(small, done, req())).toMatchObject({ ok: true });
  });

  it('treats a repeated name from the same requester as a duplicate and any other reuse as a refusal', () => {
    const t = team(
      agent('manager-1', 'manager', 0),
      agent('architect-1', 'architect', 0),
      agent('software-engineer-1', 'software-engineer', 1, { name: 'api-dev', requestedBy: 'manager-1' }),
    );
    expect(checkSpawnRequest(policy, t, req())).toMatchObject({
      ok: true,
      duplicateOf: 'software-engineer-1',
    });
    // Even once the team is stopping, a retry gets the same answer.
    expect(checkSpawnRequest(policy, { ...t, state: 'stopping' }, req())).toMatchObject({
      ok: true,
      duplicateOf: 'software-engineer-1',
    });
    expect(checkSpawnRequest(policy, t, req({ requestedBy: 'architect-1' }))).toEqual({
      ok: false,
      reason: 'name "api-dev" is taken by software-engineer-1 (software-engineer, requested by manager-1)',
    });
    expect(checkSpawnRequest(policy, { ...t, state: 'stopping' }, req({ name: 'other' }))).toEqual({
      ok: false,
      reason: 'the team run is stopping',
    });
  });
});

describe('loading a policy file', () => {
  it('names the file and the field of a mistake', () => {
    const typo = yamlFile('max_team_size: 3\nmax_request_depth: 1\nroles:\n  manager:\n    can_requst: []\n');
    expect(() => loadHierarchyPolicy(typo)).toThrow(ConfigError);
    expect(() => loadHierarchyPolicy(typo)).toThrow(`${typo}: roles.manager.can_requst: unknown key`);

    const unknownTarget = yamlFile(
      'max_team_size: 3\nmax_request_depth: 1\nroles:\n  manager:\n    can_request: [wizard]\n  architect: {}\n',
    );
    expect(() => loadHierarchyPolicy(unknownTarget)).toThrow(
      `${unknownTarget}: roles.manager.can_request[0]: unknown role "wizard" (roles: manager, architect)`,
    );

    const noArchitect = yamlFile('max_team_size: 3\nmax_request_depth: 1\nroles:\n  manager: {}\n');
    expect(() => loadHierarchyPolicy(noArchitect)).toThrow(
      `${noArchitect}: roles: must define role "architect"`,
    );

    const missingPersona = yamlFile(
      'max_team_size: 3\nmax_request_depth: 1\nroles:\n  manager:\n    persona_file: nope.md\n  architect: {}\n',
    );
    expect(() => loadHierarchyPolicy(missingPersona)).toThrow(
      /roles\.manager\.persona_file: cannot read .*nope\.md \(ENOENT\)/,
    );
  });

  it('applies overrides on top of the file', () => {
    const p = loadHierarchyPolicy(undefined, { maxTeamSize: 60, agent: { completionGraceS: 1 } });
    expect(p.maxTeamSize).toBe(60);
    expect(p.agent.completionGraceS).toBe(1);
    expect(p.agent.maxRounds).toBe(3);
  });

  it("reads the agents' heartbeat timeout (seconds), bounded; unset by default", () => {
    expect(policy.agent.turnHeartbeatTimeoutS).toBeUndefined();
    const head = 'max_team_size: 3\nmax_request_depth: 1\nroles:\n  manager: {}\n  architect: {}\n';
    expect(
      loadHierarchyPolicy(yamlFile(`${head}agent:\n  heartbeat_timeout_s: 10\n`)).agent.turnHeartbeatTimeoutS,
    ).toBe(10);
    const tooShort = yamlFile(`${head}agent:\n  heartbeat_timeout_s: 2\n`);
    expect(() => loadHierarchyPolicy(tooShort)).toThrow(`${tooShort}: agent.heartbeat_timeout_s: `);
    expect(
      loadHierarchyPolicy(undefined, { agent: { turnHeartbeatTimeoutS: 8 } }).agent.turnHeartbeatTimeoutS,
    ).toBe(8);
  });
});

describe('role definitions', () => {
  it('gives each role the model, max_turns and subagents of its agent definition', () => {
    const eng = policy.roles['software-engineer']!;
    expect(eng.model).toBe('sonnet');
    expect(eng.maxTurns).toBe(50);
    expect(Object.keys(eng.subagents ?? {})).toEqual(['test-runner']);
    expect(eng.subagents?.['test-runner']).toMatchObject({ tools: ['Read', 'Bash'], model: 'haiku' });
    expect(policy.roles.architect).toMatchObject({ model: 'opus', maxTurns: 25 });
    expect(policy.roles.manager?.model).toBeUndefined();
  });

  it('reads definitions from an agents/ folder next to the policy first, and names an unknown one', () => {
    const file = yamlFile(
      [
        'max_team_size: 3',
        'max_request_depth: 1',
        'roles:',
        '  manager: { definition: lead, can_request: [] }',
        '  architect: { definition: nope, max_turns: 7 }',
      ].join('\n'),
    );
    fs.mkdirSync(path.join(path.dirname(file), 'agents'));
    fs.writeFileSync(
      path.join(path.dirname(file), 'agents', 'lead.yaml'),
      [
        'role: lead',
        'description: leads',
        'system_prompt: lead well',
        'model: haiku',
        'max_turns: 4',
        'subagents:',
        '  - { id: scout, description: looks around, prompt: look, tools: [Read] }',
        '  - { id: scribe, description: writes notes, prompt: write, model: haiku }',
      ].join('\n'),
    );
    const missing = () => loadHierarchyPolicy(file);
    expect(missing).toThrow(ConfigError);
    expect(missing).toThrow(/roles\.architect\.definition: unknown agent preset "nope"/);

    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('definition: nope, ', ''));
    const p = loadHierarchyPolicy(file);
    expect(p.roles.manager).toMatchObject({ model: 'haiku', maxTurns: 4 });
    expect(Object.keys(p.roles.manager?.subagents ?? {})).toEqual(['scout', 'scribe']);
    expect(p.roles.architect).toMatchObject({ maxTurns: 7 });
  });
});

describe('tasks.md', () => {
  it('turns instruction bullets into tasks, skipping directives', () => {
    expect(
      tasksFromInstructions('Build it\n\n- Write the API\n* Test it\n1. Document it\n@bash echo hi'),
    ).toEqual([
      { id: 't1', status: 'pending', text: 'Write the API' },
      { id: 't2', status: 'pending', text: 'Test it' },
      { id: 't3', status: 'pending', text: 'Document it' },
    ]);
    expect(tasksFromInstructions('@write a.txt x\nBuild the API\n@bash ls')).toEqual([
      { id: 't1', status: 'pending', text: 'Build the API' },
    ]);
  });

  it('reads hand-edited statuses', () => {
    expect(
      parseTasks(
        '# Tasks\n- [completed] t1: a\n- [x] t2: b\n- [ ] t3: c\n- [in_progress] t4: d\nprose\n- [done] e',
      ),
    ).toEqual([
      { id: 't1', status: 'completed', text: 'a' },
      { id: 't2', status: 'completed', text: 'b' },
      { id: 't3', status: 'pending', text: 'c' },
      { id: 't4', status: 'in_progress', text: 'd' },
      { id: 't5', status: 'completed', text: 'e' },
    ]);
  });

  it('marks one task, by id or text, or all, and leaves other lines alone', () => {
    const text = '# Tasks\nnote: keep me\n- [pending] t1: write\n- [pending] t2: test\n';
    const one = markTasksInText(text, { task: 'T2' });
    expect(one.text).toBe('# Tasks\nnote: keep me\n- [pending] t1: write\n- [completed] t2: test\n');
    expect(markTasksInText(text, { task: 'write' }).tasks.map((t) => t.status)).toEqual([
      'completed',
      'pending',
    ]);
    expect(markTasksInText(text, { all: true }).tasks.every((t) => t.status === 'completed')).toBe(true);
    expect(markTasksInText(text, { task: 't9' })).toMatchObject({ text, unknown: 't9' });
  });
});

describe('persona and agent directories', () => {
  const persona = renderPersona({
    runId: 'team-x',
    goal: 'Build REST API',
    workspace: '/ws',
    agent: {
      id: 'software-engineer-1',
      name: 'api-dev',
      role: 'software-engineer',
      depth: 1,
      requestedBy: 'manager-1',
    },
    title: 'software engineer',
    persona: policy.roles['software-engineer']!.persona,
    canRequest: ['intern'],
    sessionId: '00000000-0000-4000-8000-000000000000',
    backend: 'cli',
    startedAt: '2025-01-01T00:00:00.000Z',
  });

  it('tells the agent who it is, where its files are, how to request teammates and mark tasks done', () => {
    expect(persona).toContain('You implement.');
    expect(persona).toContain('- Team run: team-x');
    expect(persona).toContain('- Session id: 00000000-0000-4000-8000-000000000000');
    expect(persona).toContain('/ws/.team/software-engineer-1/');
    expect(persona).toContain(
      'orchestrator team request --role intern --name <short-name> --instructions-file <file.md>',
    );
    expect(persona).toContain('orchestrator team task done <task-id>');
    expect(persona).toContain('archived as software-engineer-1-completed/');
  });

  it('prepares, marks and archives an agent directory idempotently', async () => {
    const acts = createTeamActivities({ logger: pino({ level: 'silent' }), binDir: '/opt/bin' });
    const workspace = fs.mkdtempSync(path.join(tmp, 'ws-'));
    const input = {
      runId: 'team-x',
      workspace,
      outputsDir: path.join(tmp, 'outputs'),
      agent: { id: 'intern-1', name: 'helper', role: 'intern', depth: 2, requestedBy: 'software-engineer-1' },
      workflowId: 'team-x/intern-1',
      backend: 'cli' as const,
      persona: 'Role: intern',
      instructions: '- Write tests\n- Write docs',
      sessionId: '00000000-0000-4000-8000-000000000001',
      startedAt: '2025-01-01T00:00:00.000Z',
    };
    const prep = await acts.prepareTeamAgent(input);
    const dir = path.join(workspace, '.team', 'intern-1');
    expect(prep.dir).toBe(dir);
    expect(prep.env.PATH?.startsWith('/opt/bin:')).toBe(true);
    expect(prep.env.ORCHESTRATOR_AGENT_DIR).toBe(dir);
    expect(prep.tasks).toEqual({ completed: 0, total: 2 });
    expect(fs.readFileSync(path.join(dir, 'instructions.md'), 'utf8')).toContain(
      '## Your assignment\n\n- Write tests',
    );
    const session = JSON.parse(fs.readFileSync(path.join(dir, 'session.json'), 'utf8'));
    expect(session).toMatchObject({
      runId: 'team-x',
      agentId: 'intern-1',
      state: 'running',
      sessionId: input.sessionId,
    });

    expect((await acts.markTeamTasks({ dir, task: 't1' })).counts).toEqual({ completed: 1, total: 2 });
    // A retried prepare keeps the progress in tasks.md.
    expect((await acts.prepareTeamAgent(input)).tasks).toEqual({ completed: 1, total: 2 });
    expect((await acts.markTeamTasks({ dir, task: 'nope' })).unknown).toBe('nope');

    const archived = await acts.archiveTeamAgent({ dir, outcome: 'completed', session: { costUsd: 0.5 } });
    expect(archived.archivedTo).toBe(`${dir}-completed`);
    expect(fs.existsSync(dir)).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(`${dir}-completed`, 'session.json'), 'utf8'))).toMatchObject({
      state: 'completed',
      costUsd: 0.5,
    });
    // A retried archive finds its work done.
    expect(await acts.archiveTeamAgent({ dir, outcome: 'completed' })).toEqual(archived);
  });
});
