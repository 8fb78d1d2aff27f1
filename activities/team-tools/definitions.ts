/**
 * The team tools every model agent of a team gets: through its MCP server (`mcp__team__<name>` in the
 * `claude` CLI) or as tool definitions (Messages API). One zod schema per tool is the source of both the
 * JSON schema the model sees and the validation of what it sends.
 */
import { z } from 'zod';
import { AgentNameSchema, RoleNameSchema } from '../../src/shared/team';

/** The MCP server's name in `--mcp-config`: tools appear to the CLI as `mcp__team__<tool>`. */
export const TEAM_MCP_SERVER = 'team';

export const TEAM_TOOL_SCHEMAS = {
  request_teammate: z.object({
    role: RoleNameSchema.describe('Role of the new teammate, e.g. software-engineer or intern'),
    name: AgentNameSchema.describe('Short unique name for the teammate, e.g. api-dev'),
    instructions: z
      .string()
      .min(1, 'must not be empty')
      .max(100_000, 'must be at most 100000 characters')
      .describe('What the teammate must do, in markdown; each bullet line becomes one of its tasks'),
  }),
  message_teammate: z.object({
    to: z.string().min(1, 'must name an agent').describe('Agent id (e.g. software-engineer-1) or name'),
    text: z.string().min(1, 'must not be empty').max(20_000, 'must be at most 20000 characters'),
  }),
  read_messages: z.object({}),
  list_team: z.object({}),
  complete_task: z.object({
    task: z
      .string()
      .min(1, 'must not be empty')
      .describe('Task id from your tasks.md (e.g. t1), its text, or "all" when all your work is done'),
  }),
  report_status: z.object({
    text: z.string().min(1, 'must not be empty').max(500, 'must be at most 500 characters'),
  }),
} as const;

export type TeamToolName = keyof typeof TEAM_TOOL_SCHEMAS;

const DESCRIPTIONS: Record<TeamToolName, string> = {
  request_teammate:
    'Ask for a new teammate. Returns its agent id once its process runs, or why the team policy refused the request. Repeating a request with the same name starts nothing new.',
  message_teammate:
    'Send a message to a running teammate (by id or name). It reaches their live session as a new user turn within seconds. Refused when that agent has ended.',
  read_messages:
    'The messages you received since you last called this tool (they also arrive as user turns).',
  list_team: 'Every agent of the team: id, role, name, state, task progress and latest status report.',
  complete_task:
    'Mark one of your tasks done (its id, e.g. t1), or "all" when all your work is done. Your process ends once every task is completed.',
  report_status: 'Report what you are doing in one short line; shown in the team status for everyone.',
};

export interface TeamToolDefinition {
  name: TeamToolName;
  description: string;
  /** JSON schema of the arguments (MCP `inputSchema`, Messages API `input_schema`). */
  inputSchema: Record<string, unknown>;
}

export const TEAM_TOOL_NAMES = Object.keys(TEAM_TOOL_SCHEMAS) as TeamToolName[];

/** The tools in the shape of MCP's tools/list (and, renamed, the Messages API's `tools`). */
export function teamToolDefinitions(): TeamToolDefinition[] {
  return TEAM_TOOL_NAMES.map((name) => {
    const { $schema: _s, ...inputSchema } = z.toJSONSchema(TEAM_TOOL_SCHEMAS[name]) as Record<
      string,
      unknown
    >;
    return { name, description: DESCRIPTIONS[name], inputSchema };
  });
}

/** `--allowedTools` entries that pre-approve the team tools in the CLI. */
export function teamToolsAllowed(): string[] {
  return TEAM_TOOL_NAMES.map((n) => `mcp__${TEAM_MCP_SERVER}__${n}`);
}

export function isTeamTool(name: string): name is TeamToolName {
  return Object.hasOwn(TEAM_TOOL_SCHEMAS, name);
}
