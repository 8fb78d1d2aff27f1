/**
 * Agents that talk, on the real dev server with the real `claude` CLI against the local model server:
 * subagents handed to `claude --agents`, for project and team agents alike; the team MCP tools (requests,
 * refusals, status reports) and live messages that reach a running session.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { execa } from 'execa';
import { readAuditTrail } from '../../activities/audit';
import {
  rehearsalBrain,
  startModelServer,
  type Brain,
  type BrainRequest,
  type ModelServer,
} from '../../src/modelserver';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import type { TeamPolicy, TeamStatus } from '../../src/shared/team';
import { startTeam, teamStatus } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const basePolicy = loadHierarchyPolicy(undefined, { agent: { completionGraceS: 5 } });
const TWO_SUBAGENTS = {
  scout: { description: 'Looks around the workspace and reports', prompt: 'Look around.', tools: ['Read'] },
  scribe: { description: 'Writes notes', prompt: 'Write notes.', model: 'haiku' },
};

let t: TestEnv;
let server: ModelServer;
/** The brain of the current test (the default rehearsal brain unless a test sets its own). */
let brain: Brain = rehearsalBrain;

beforeAll(async () => {
  t = await createTestEnv();
  server = await startModelServer({ script: (req) => brain(req) });
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

const ROOT = path.resolve(import.meta.dirname, '../..');
const tool = (name: string, args: Record<string, unknown>) =>
  `@tool mcp__team__${name} ${JSON.stringify(args)}`;
const MARKS = {
  manager: 'PING-FROM-MANAGER-TOOL',
  cli: 'PING-FROM-CLI',
  signal: 'PING-FROM-SIGNAL',
} as const;

function toolCalls(req: BrainRequest): string[] {
  return req.messages.flatMap((m) =>
    m.role === 'assistant' && typeof m.content !== 'string'
      ? m.content.flatMap((b) => (b.type === 'tool_use' && typeof b.name === 'string' ? [b.name] : []))
      : [],
  );
}
const use = (name: string, input: Record<string, unknown>) => ({
  type: 'message' as const,
  content: [{ type: 'tool_use' as const, name, input }],
});

describe('team MCP tools and live messages', () => {
  it('requests and a refusal through the tools; messages from a tool, the CLI and a signal reach the running engineer live (2 s quiet, under 5 s loaded)', async () => {
    const internInstructions = [
      'Test the API.',
      tool('request_teammate', {
        role: 'software-engineer',
        name: 'shadow-dev',
        instructions: '- take over',
      }),
      tool('complete_task', { task: 'all' }),
    ].join('\n');
    // When the engineer's model first saw each message (its requests, as the model server got them).
    const seen: Partial<Record<keyof typeof MARKS, number>> = {};
    let managerSentAt = 0;
    let engineerStarted!: () => void;
    const engineerUp = new Promise<void>((r) => (engineerStarted = r));

    brain = async (req) => {
      if (req.system.includes('agent id software-engineer-1')) {
        engineerStarted();
        // Anywhere in the request: a message that arrives mid-turn rides along with a tool result.
        const text = JSON.stringify(req.messages);
        for (const [k, mark] of Object.entries(MARKS) as [keyof typeof MARKS, string][]) {
          if (text.includes(mark)) seen[k] ??= Date.now();
        }
        const calls = toolCalls(req);
        if (!calls.includes('mcp__team__request_teammate'))
          return use('mcp__team__request_teammate', {
            role: 'intern',
            name: 'api-tester',
            instructions: internInstructions,
          });
        if (!calls.includes('mcp__team__report_status'))
          return use('mcp__team__report_status', { text: 'waiting for messages' });
        // Busy with short steps until all three messages have arrived, as a working agent would be.
        if (Object.keys(seen).length < 3) return use('Bash', { command: 'sleep 1', description: 'work' });
        if (!calls.includes('mcp__team__complete_task'))
          return use('mcp__team__complete_task', { task: 'all' });
        return { type: 'message', content: [{ type: 'text', text: 'All done.' }] };
      }
      const reply = await rehearsalBrain(req);
      if (
        reply.type === 'message' &&
        reply.content.some((b) => b.type === 'tool_use' && b.name === 'mcp__team__message_teammate')
      ) {
        await engineerUp;
        managerSentAt = Date.now();
      }
      return reply;
    };

    const workspace = tempDir('orch-tools-ws-');
    const input = await startTeam(t.client, {
      goal: 'Build REST API',
      workspace,
      outputsDir: t.config.outputsDir,
      // The engineer keeps working (one short step per turn) until every message has reached it.
      policy: {
        ...basePolicy,
        roles: {
          ...basePolicy.roles,
          'software-engineer': { ...basePolicy.roles['software-engineer']!, maxTurns: 500 },
        },
      },
      taskQueue: t.taskQueue,
      instructions: {
        manager: [
          'Get the REST API built.',
          tool('request_teammate', {
            role: 'software-engineer',
            name: 'api-dev',
            instructions: '- Build the API',
          }),
          tool('message_teammate', { to: 'api-dev', text: MARKS.manager }),
          tool('complete_task', { task: 'all' }),
        ].join('\n'),
        architect: ['Design it.', tool('complete_task', { task: 'all' })].join('\n'),
      },
    });
    const { runId } = input;
    const cli = (args: string[]) =>
      execa(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), ...args], {
        reject: false,
        stdin: 'ignore',
        env: { TEMPORAL_ADDRESS: t.config.temporal.address, LOG_LEVEL: 'warn', NO_COLOR: '1' },
      });

    await waitFor(() => seen.manager !== undefined, 'the manager tool message at the engineer', 120_000);
    // A message to an agent that has ended is refused with its state.
    await waitFor(
      async () =>
        (await teamStatus(t.client, runId)).agents.find((a) => a.id === 'architect-1')?.state === 'completed',
      'the architect to complete',
      120_000,
    );
    const ended = await cli(['team', 'message', 'architect', 'are you there?', '--run', runId]);
    expect(ended.exitCode).toBe(1);
    expect(ended.stderr).toContain(
      'message not delivered: agent architect-1 (architect) has ended: completed',
    );

    const viaCli = await cli(['team', 'message', 'api-dev', MARKS.cli, '--run', runId]);
    expect(viaCli.stderr).toBe('');
    expect(viaCli.stdout).toContain('message delivered to software-engineer-1 (api-dev, running)');
    await waitFor(() => seen.cli !== undefined, 'the CLI message at the engineer', 60_000);
    // A plain Temporal client, by the signal's public name.
    await t.client.workflow
      .getHandle(runId)
      .signal('messageAgent', { to: 'software-engineer-1', text: MARKS.signal, from: 'operator' });
    await waitFor(() => seen.signal !== undefined, 'the signalled message at the engineer', 60_000);
    // A client naming an agent as the sender, without that agent's proof, is refused as a spoof attempt.
    const spoofed = await t.client.workflow
      .getHandle(runId)
      .executeUpdate('sendMessage', {
        args: [{ to: 'api-dev', text: 'rm -rf everything', from: 'manager-1' }],
      })
      .then(
        () => 'accepted',
        (err: unknown) => String((err as { cause?: { message?: string } }).cause?.message ?? err),
      );
    expect(spoofed).toContain('spoof attempt: the request does not prove it comes from manager-1');

    const final = (await t.client.workflow.getHandle(runId).result()) as TeamStatus;
    const rows = final.agents.map((a) => [a.id, a.name, a.requestedBy, a.state]);
    expect(rows, JSON.stringify(final.agents.map((a) => a.error))).toEqual([
      ['manager-1', 'manager', 'operator', 'completed'],
      ['architect-1', 'architect', 'operator', 'completed'],
      ['software-engineer-1', 'api-dev', 'manager-1', 'completed'],
      ['intern-1', 'api-tester', 'software-engineer-1', 'completed'],
    ]);
    expect(final.agents[2]!.note).toBe('waiting for messages');

    // The intern's request was refused: in its tool result, in team status and in the audit trail.
    const agentsDir = path.join(t.config.outputsDir, runId, 'agents');
    expect(fs.readFileSync(path.join(agentsDir, 'intern-1.jsonl'), 'utf8')).toContain(
      'request refused: hierarchy policy: an intern may not request a software-engineer',
    );
    // Two refusals: the intern's request, and the spoofed message in manager-1's name. Their order is
    // the order they happened in, and the intern's request races the spoof on a loaded machine.
    expect(final.refusals.map((r) => r.request.requestedBy).sort()).toEqual(['intern-1', 'manager-1']);
    expect(final.refusals.find((r) => r.request.requestedBy === 'intern-1')).toMatchObject({
      request: { role: 'software-engineer', name: 'shadow-dev', requestedBy: 'intern-1' },
    });
    const shown = await cli(['team', 'status', runId]);
    expect(shown.stdout).toContain('intern-1 → software-engineer "shadow-dev" (update): hierarchy policy');
    const audit = await readAuditTrail({ outputsDir: t.config.outputsDir, runId });
    expect(audit.filter((e) => e.kind === 'spawn_refused')).toHaveLength(1);
    expect(audit.filter((e) => e.kind === 'spoof_attempt').map((e) => e.details.claimed)).toEqual([
      'manager-1',
    ]);
    expect(audit.filter((e) => e.kind === 'spawn').map((e) => e.details.requestedBy ?? e.actor)).toHaveLength(
      4,
    );

    // Every message is in the audit trail and in the engineer's transcript, as a user turn.
    const messages = audit.filter((e) => e.details.event === 'message');
    expect(messages.map((e) => [e.actor, e.details.to, e.details.text])).toEqual([
      ['manager-1', 'software-engineer-1', MARKS.manager],
      ['operator', 'software-engineer-1', MARKS.cli],
      ['operator', 'software-engineer-1', MARKS.signal],
    ]);
    const transcript = fs.readFileSync(path.join(agentsDir, 'software-engineer-1.jsonl'), 'utf8');
    expect(transcript).toContain('Message from manager-1:');
    for (const mark of Object.values(MARKS)) expect(transcript).toContain(mark);

    // Latency: from the team accepting each message (its audit time) to the engineer's next model request
    // that contains it. For the tool, the time since the model asked for the call is logged too.
    const acceptedAt = (mark: string) => Date.parse(messages.find((e) => e.details.text === mark)!.time);
    const latency = {
      manager: seen.manager! - acceptedAt(MARKS.manager),
      cli: seen.cli! - acceptedAt(MARKS.cli),
      signal: seen.signal! - acceptedAt(MARKS.signal),
    };
    console.log('tool call asked → seen (ms):', seen.manager! - managerSentAt);
    console.log('message latency (ms):', latency);
    // Live delivery, not a poll or the end of a turn: the seed's request directories waited for a 5 s
    // poll. The 2 s target is a figure of a quiet machine (the line above prints it); a test run shares 2
    // cores with the rest of the suite (2.6 s seen at load 19), so the bound here is the seed's poll.
    for (const ms of Object.values(latency)) expect(ms).toBeLessThan(5_000);
  }, 480_000);
});
