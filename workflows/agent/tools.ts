/**
 * Which api tools an agent may call, and how Claude Code's tool names (as roles list them) map to them.
 */
import type { AgentSpec } from '../../src/shared/spec';

/**
 * Claude Code's tool names and the api tools that do the same: a role's `allowed_tools` (the presets
 * speak Claude Code's names) binds an api agent the same way. `Read` reads and looks around, `Write` and
 * `Edit` write files, `Bash` runs commands (git included).
 */
export const CLI_TOOL_EQUIVALENTS: Readonly<Record<string, readonly string[]>> = {
  Read: ['read_file', 'list_files', 'search', 'sql'],
  Glob: ['list_files'],
  LS: ['list_files'],
  Grep: ['search'],
  Write: ['write_file'],
  Edit: ['write_file'],
  MultiEdit: ['write_file'],
  Bash: ['run_command', 'git'],
};

/**
 * The api tools an agent may call: its `tools` (the registry's names, as a role selects them), else
 * `allowed_tools` (default all), minus `disallowed_tools`. With `aliases`, Claude Code's names in either
 * list stand for their api equivalents.
 */
export function allowedApiTools(
  agent: Pick<AgentSpec, 'allowed_tools' | 'disallowed_tools' | 'tools'>,
  all: readonly string[],
  aliases = false,
): string[] {
  const expand = (names: readonly string[]) =>
    aliases ? names.flatMap((n) => [n, ...(CLI_TOOL_EQUIVALENTS[n] ?? [])]) : names;
  const listed = agent.tools ?? expand(agent.allowed_tools ?? all);
  const refused = expand(agent.disallowed_tools ?? []);
  return all.filter((t) => listed.includes(t) && !refused.includes(t));
}

/** Every api tool (activities/tools TOOL_NAMES; repeated here because workflows import no activity code). */
export const API_TOOL_NAMES = [
  'read_file',
  'write_file',
  'list_files',
  'search',
  'run_command',
  'git',
  'sql',
];
