/**
 * The argv of one headless `claude` run (pure). The prompt is NOT part of argv: it goes to stdin, because
 * `--allowedTools`/`--disallowedTools` are variadic and would swallow a positional prompt that follows
 * them, and stdin has no argv length limit.
 */
import type { CliSubagent } from '../shared/spec';

// The schema lives in src/shared (workflows carry subagents in their inputs); re-exported for the CLI side.
export { CliSubagentSchema, type CliSubagent } from '../shared/spec';

/** `new` starts the session with `--session-id`; `resume` continues it with `--resume`. */
export type SessionMode = 'new' | 'resume';

export interface ClaudeArgsOptions {
  sessionId: string;
  mode: SessionMode;
  model?: string;
  maxTurns?: number;
  /** Per invocation: the CLI counts only what this run spends, not the resumed session's total. */
  maxBudgetUsd?: number;
  appendSystemPrompt?: string;
  allowedTools?: string[];
  disallowedTools?: string[];
  permissionMode?: string;
  /** Subagents by name, passed as `--agents <json>`. */
  agents?: Record<string, CliSubagent>;
  /**
   * `--setting-sources` value; `''` loads no user/project/local settings files, so a developer's
   * ~/.claude/settings.json (hooks, permissions) cannot change what an agent does. Omit to let the CLI
   * load them all.
   */
  settingSources?: string;
  /** `--mcp-config <json>` (a JSON string or a file), with `--strict-mcp-config`: only these MCP servers. */
  mcpConfig?: string;
  /**
   * Live input: `--input-format stream-json --replay-user-messages`. The prompt and later user turns
   * arrive on stdin as JSON lines ({@link userLine}); each is echoed to stdout, so it is in the transcript.
   */
  liveInput?: boolean;
}

/** One user turn on the stdin of a `claude --input-format stream-json` process. */
export function userLine(text: string): string {
  return `${JSON.stringify({
    type: 'user',
    message: { role: 'user', content: text },
    parent_tool_use_id: null,
    session_id: '',
  })}\n`;
}

/** Builds the argv (without the binary) of `claude -p --output-format stream-json --verbose …`. */
export function buildClaudeArgs(o: ClaudeArgsOptions): string[] {
  const args = ['-p', '--output-format', 'stream-json', '--verbose'];
  args.push(o.mode === 'new' ? '--session-id' : '--resume', o.sessionId);
  if (o.model) args.push('--model', o.model);
  if (o.maxTurns !== undefined) args.push('--max-turns', String(o.maxTurns));
  if (o.maxBudgetUsd !== undefined) args.push('--max-budget-usd', String(o.maxBudgetUsd));
  if (o.appendSystemPrompt) args.push('--append-system-prompt', o.appendSystemPrompt);
  if (o.permissionMode) args.push('--permission-mode', o.permissionMode);
  if (o.settingSources !== undefined) args.push('--setting-sources', o.settingSources);
  if (o.agents && Object.keys(o.agents).length > 0) args.push('--agents', JSON.stringify(o.agents));
  if (o.liveInput) args.push('--input-format', 'stream-json', '--replay-user-messages');
  // --mcp-config is variadic too: the flag after it ends its list.
  if (o.mcpConfig) args.push('--mcp-config', o.mcpConfig, '--strict-mcp-config');
  // Variadic flags go last so nothing after them can be read as one more tool name.
  if (o.allowedTools?.length) args.push('--allowedTools', ...o.allowedTools);
  if (o.disallowedTools?.length) args.push('--disallowedTools', ...o.disallowedTools);
  return args;
}
