/**
 * Agents that talk, on the real dev server with the real `claude` CLI against the local model server:
 * subagents handed to `claude --agents`, for project and team agents alike.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import type { TeamPolicy, TeamStatus } from '../../src/shared/team';
import { startTeam } from '../../src/teams';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const basePolicy = loadHierarchyPolicy(undefined, { agent: { completionGraceS: 5 } });
const TWO_SUBAGENTS = {
  scout: { description: 'Looks around the workspace and reports', prompt: 'Look around.', tools: ['Read'] },
  scribe: { description: 'Writes notes', prompt: 'Write notes.', model: 'haiku' },
};

let t: TestEnv;
let server: ModelServer;

beforeAll(async () => {
  t = await createTestEnv();
  server = await startModelServer();
  await t.startWorker({
    config: {
      ...t.config,
      anthropic: { baseURL: server.url, apiKey: 'sk-test-not-a-secret' },
      agentHome: tempDir('orch-tools-home-'),
    },
  });
});
afterAll(async () => {
  await t?.close();
  await server?.close();
});

/** The `agents` list of the first `system/init` line of a stream-json transcript. */
function initAgents(transcript: string): string[] {
  for (const line of fs.readFileSync(transcript, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const ev = JSON.parse(line) as { type?: string; subtype?: string; agents?: string[] };
    if (ev.type === 'system' && ev.subtype === 'init') return ev.agents ?? [];
  }
  throw new Error(`no init line in ${transcript}`);
}

describe('subagents reach claude --agents', () => {
  it('a project agent with two subagents: its session init line lists both', async () => {
    const spec = ProjectSpecSchema.parse({
      project: { name: 'subagents' },
      phases: [
        {
          name: 'development',
          agents: [
            {
              role: 'developer',
              backend: 'cli',
              model: 'haiku',
              prompt: '@say done',
              subagents: TWO_SUBAGENTS,
            },
          ],
        },
      ],
    });
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-sub-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const done = (await t.client.workflow.getHandle(input.runId).result()) as { state: string };
    expect(done.state).toBe('completed');
    const agents = initAgents(
      path.join(t.config.outputsDir, input.runId, 'agents', 'development-developer.jsonl'),
    );
    expect(agents).toEqual(expect.arrayContaining(['scout', 'scribe']));
  });

  it('a team role with two subagents: its agent session init line lists both', async () => {
    const manager = basePolicy.roles.manager!;
    const policy: TeamPolicy = {
      ...basePolicy,
      roles: { ...basePolicy.roles, manager: { ...manager, model: 'haiku', subagents: TWO_SUBAGENTS } },
    };
    const input = await startTeam(t.client, {
      goal: 'Show the subagents',
      workspace: tempDir('orch-sub-team-'),
      outputsDir: t.config.outputsDir,
      policy,
      taskQueue: t.taskQueue,
      instructions: {
        manager: 'Lead.\n@bash orchestrator team task done --all',
        architect: 'Design.\n@bash orchestrator team task done --all',
      },
    });
    const final = (await t.client.workflow.getHandle(input.runId).result()) as TeamStatus;
    expect(final.agents.map((a) => a.state)).toEqual(['completed', 'completed']);
    const dir = path.join(t.config.outputsDir, input.runId, 'agents');
    expect(initAgents(path.join(dir, 'manager-1.jsonl'))).toEqual(
      expect.arrayContaining(['scout', 'scribe']),
    );
    // The architect's role has none of its own: only the CLI's built-ins.
    expect(initAgents(path.join(dir, 'architect-1.jsonl'))).not.toContain('scout');
    // The model of the role's definition reached the CLI (architect.yaml says opus).
    const served = server.requests.filter((r) => r.system.includes('agent id architect-1'));
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((r) => r.model.includes('opus'))).toBe(true);
  });
});
