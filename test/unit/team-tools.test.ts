/**
 * The team tools' definitions (what the model sees), the message check the team runs, and the rehearsal
 * brain's `@tool` directive that scenario tests use to call them.
 */
import { describe, expect, it } from 'vitest';
import {
  teamToolDefinitions,
  teamToolsAllowed,
  TEAM_TOOL_SCHEMAS,
} from '../../activities/team-tools/definitions';
import { buildClaudeArgs, userLine } from '../../src/claude/args';
import { rehearsalBrain } from '../../src/modelserver';
import { checkMessage, type TeamView } from '../../src/shared/team';

const team: TeamView = {
  state: 'running',
  agents: [
    {
      id: 'manager-1',
      name: 'manager',
      role: 'manager',
      depth: 0,
      requestedBy: 'operator',
      state: 'running',
    },
    {
      id: 'architect-1',
      name: 'architect',
      role: 'architect',
      depth: 0,
      requestedBy: 'operator',
      state: 'completed',
    },
  ],
};

describe('team tools', () => {
  it('each tool has a description and a JSON schema; the CLI pre-approves them by their MCP names', () => {
    const defs = teamToolDefinitions();
    expect(defs.map((d) => d.name)).toEqual([
      'request_teammate',
      'message_teammate',
      'read_messages',
      'list_team',
      'complete_task',
      'report_status',
    ]);
    const req = defs[0]!.inputSchema as { required: string[]; properties: Record<string, unknown> };
    expect(req.required).toEqual(['role', 'name', 'instructions']);
    expect(defs.every((d) => d.description.length > 20)).toBe(true);
    expect(teamToolsAllowed()).toContain('mcp__team__request_teammate');
    // The arguments are checked with the same schema; a bad one says which field and why.
    const bad = TEAM_TOOL_SCHEMAS.request_teammate.safeParse({ role: 'Boss', name: 'x', instructions: 'y' });
    expect(bad.success).toBe(false);
  });

  it('live input and the MCP config reach the claude argv, the MCP flag list closed by the next flag', () => {
    const args = buildClaudeArgs({
      sessionId: 's',
      mode: 'new',
      liveInput: true,
      mcpConfig: '{"mcpServers":{}}',
      allowedTools: ['Bash', 'mcp__team__list_team'],
    });
    expect(args.join(' ')).toContain(
      '--input-format stream-json --replay-user-messages --mcp-config {"mcpServers":{}} --strict-mcp-config',
    );
    expect(args.slice(-3)).toEqual(['--allowedTools', 'Bash', 'mcp__team__list_team']);
    expect(JSON.parse(userLine('hi\nthere'))).toMatchObject({
      type: 'user',
      message: { role: 'user', content: 'hi\nthere' },
    });
  });
});

describe('checkMessage', () => {
  it('accepts a message to a running agent by id or name, and refuses an ended or unknown one with why', () => {
    expect(checkMessage(team, { to: 'manager', text: 'hi' })).toMatchObject({
      ok: true,
      agentId: 'manager-1',
    });
    expect(checkMessage(team, { to: 'manager-1', text: 'hi', from: 'architect-1' })).toMatchObject({
      ok: true,
    });
    expect(checkMessage(team, { to: 'architect', text: 'hi' })).toEqual({
      ok: false,
      reason: 'agent architect-1 (architect) has ended: completed',
    });
    expect(checkMessage(team, { to: 'ghost', text: 'hi' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(
        /^no agent "ghost" in this team; agents: manager-1 \(manager\)/,
      ) as string,
    });
    expect(checkMessage(team, { to: 'manager', text: '' })).toMatchObject({
      ok: false,
      reason: 'invalid message: text: must not be empty',
    });
    expect(checkMessage(team, { to: 'manager', text: 'x', from: 'intruder' })).toMatchObject({
      ok: false,
      reason: 'sender "intruder" is not an agent of this team',
    });
  });
});

describe('the rehearsal brain calls tools by name', () => {
  const req = (toolNames: string[]) => ({
    model: 'claude-haiku-4-5',
    system: '',
    messages: [
      {
        role: 'user' as const,
        content: '@tool mcp__team__list_team {}\n@tool nope {"a":1}\n@tool bad {not json',
      },
    ],
    toolNames,
    maxTokens: 100,
    attempt: 1,
  });
  it('calls an offered tool with the JSON arguments, and skips tools not offered', async () => {
    const offered = await rehearsalBrain(req(['Bash', 'mcp__team__list_team']));
    expect(offered).toMatchObject({
      type: 'message',
      content: [{ type: 'text' }, { type: 'tool_use', name: 'mcp__team__list_team', input: {} }],
    });
    const absent = await rehearsalBrain(req(['Bash']));
    expect(JSON.stringify(absent)).not.toContain('tool_use');
  });
});
