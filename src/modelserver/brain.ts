/**
 * The "brain" of the local model server: it decides what the stand-in model answers. The default
 * {@link rehearsalBrain} is deterministic and stateless (it re-derives its progress from the conversation on
 * every request), so a resumed CLI session or a retried activity continues exactly where it left off.
 *
 * Directives, one per line anywhere in the conversation's first user text (the task prompt):
 * - `@write <relative/path> <content>`: write a file (content is one line; `\n`, `\t` and `\\` are unescaped).
 * - `@bash <command>`: run a shell command.
 * - `@force-bash <command>`: the same even when the request does not offer the tool (a model that
 *   misbehaves: it calls a tool its agent may not use).
 * - `@cost <output_tokens>`: the next step's response reports this many output tokens (capped at max_tokens).
 * - `@fail <status> [times]`: the next step's request fails with this HTTP status, on its first `times`
 *   attempts (default: always).
 * - `@sleep <ms>`: the next step's response streams only after this delay (pings keep the stream alive).
 * - `@say <text>`: the final answer's text.
 * - `@tool <name> <json>`: call a tool the request offers by its exact name (e.g. an MCP tool
 *   `mcp__team__request_teammate`) with these JSON arguments; skipped when the tool is not offered.
 * `@write`/`@bash`/`@tool` become one tool_use per turn; "the next step" is the next `@write`/`@bash` or, after the
 * last one, the final answer.
 */
import path from 'node:path';

/** A content block as the Messages API sends it; only the fields the brain reads are typed. */
export interface WireBlock {
  type: string;
  text?: string;
  content?: unknown;
  is_error?: boolean;
  name?: string;
  input?: unknown;
  [key: string]: unknown;
}

export interface WireMessage {
  role: 'user' | 'assistant' | 'system';
  content: string | WireBlock[];
}

/** What the server hands a brain for one `/v1/messages` request. */
export interface BrainRequest {
  /** The canonical model id the request names. */
  model: string;
  /** The top-level system prompt, text blocks joined. */
  system: string;
  messages: WireMessage[];
  /** Names of the tools the request offers. */
  toolNames: string[];
  maxTokens: number;
  /** 1 the first time the server sees this conversation (same model and messages), 2 on a retry, … */
  attempt: number;
}

export type ReplyBlock =
  { type: 'text'; text: string } | { type: 'tool_use'; name: string; input: Record<string, unknown> };

/** An HTTP error the server answers with instead of a message. */
export interface Fault {
  status: number;
  message?: string;
  /** Sent as the `retry-after` header. */
  retryAfterSeconds?: number;
  /** The error body's `error.type`; derived from the status when absent. */
  errorType?: string;
  /** Streaming requests only: answer 200, send `message_start`, then an SSE `error` event. */
  midStream?: boolean;
  /**
   * A stall, not an error: send nothing at all (no headers, no pings) for this long, then answer
   * normally. `status` is ignored. Tests of hang detection use it.
   */
  stallMs?: number;
}

export type BrainReply =
  | {
      type: 'message';
      content: ReplyBlock[];
      /** Defaults to `tool_use` when content has a tool_use block, else `end_turn`. */
      stopReason?: 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence';
      /** Overrides the output token count derived from the content. */
      outputTokens?: number;
      /** Delay before the content is sent. */
      delayMs?: number;
    }
  | { type: 'error'; fault: Fault };

/** Decides the answer to one request. May be async (e.g. a test script awaiting a latch). */
export type Brain = (req: BrainRequest) => BrainReply | Promise<BrainReply>;

type Action =
  | { kind: 'write'; path: string; content: string }
  | { kind: 'bash'; command: string; forced?: boolean }
  | { kind: 'tool'; name: string; input: Record<string, unknown> };

interface Modifiers {
  cost?: number;
  fail?: { status: number; times: number };
  sleepMs?: number;
}

interface Step {
  action?: Action;
  mods: Modifiers;
}

/** Joins the text of a message's content (string or text blocks); tool results are not text. */
export function textOf(content: string | WireBlock[]): string {
  if (typeof content === 'string') return content;
  return content
    .filter((b) => b.type === 'text' && typeof b.text === 'string')
    .map((b) => b.text)
    .join('\n');
}

/**
 * Removes the `<system-reminder>` blocks the CLI injects into user messages (environment, attribution,
 * available agents…), leaving what the user wrote.
 */
export function stripReminders(text: string): string {
  return text.replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, '').trim();
}

function userTexts(messages: WireMessage[]): string[] {
  return messages
    .filter((m) => m.role === 'user')
    .map((m) => stripReminders(textOf(m.content)))
    .filter(Boolean);
}

/** The user's text of the last `user` message that has any (`system` entries and tool results are skipped). */
export function lastUserText(messages: WireMessage[]): string {
  return userTexts(messages).at(-1) ?? '';
}

/** The task prompt: the user's text of the first user message that has any. */
export function firstUserText(messages: WireMessage[]): string {
  return userTexts(messages)[0] ?? '';
}

/** The team MCP tool that marks an agent's tasks done (activities/team-tools), as `claude` names it. */
const TEAM_COMPLETE_TOOL = 'mcp__team__complete_task';

/** Whether an assistant turn of the conversation already called the tool `name`. */
function calledTool(messages: WireMessage[], name: string): boolean {
  return messages.some(
    (m) =>
      m.role === 'assistant' &&
      typeof m.content !== 'string' &&
      m.content.some((b) => b.type === 'tool_use' && b.name === name),
  );
}

function countToolResults(messages: WireMessage[]): { total: number; failed: number } {
  let total = 0;
  let failed = 0;
  for (const m of messages) {
    if (m.role !== 'user' || typeof m.content === 'string') continue;
    for (const b of m.content) {
      if (b.type !== 'tool_result') continue;
      total++;
      if (b.is_error === true) failed++;
    }
  }
  return { total, failed };
}

/**
 * The session's working directory. The CLI states it in a mid-conversation `system` message
 * ("Primary working directory: /abs/path"); older formats say "Working directory: /abs/path".
 */
export function findCwd(system: string, messages: WireMessage[]): string | undefined {
  const texts = [system, ...messages.map((m) => textOf(m.content))];
  for (const t of texts) {
    const m = /(?:Primary working directory|Working directory|cwd)\s*:\s*(\/[^\n]*)/i.exec(t);
    if (m?.[1]) return m[1].trim();
  }
  return undefined;
}

const unescape = (s: string) =>
  s.replace(/\\(n|t|\\)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));

interface Parsed {
  steps: Step[];
  final: Modifiers;
  say?: string;
  directiveCount: number;
}

function parseDirectives(task: string, canRun: (a: Action) => boolean): Parsed {
  const steps: Step[] = [];
  let pending: Modifiers = {};
  let say: string | undefined;
  let directiveCount = 0;
  for (const raw of task.split('\n')) {
    const m = /^@(write|bash|force-bash|tool|cost|fail|sleep|say)(?:\s+(.*))?$/.exec(raw.trim());
    if (!m) continue;
    const verb = m[1];
    const arg = (m[2] ?? '').trim();
    directiveCount++;
    if (verb === 'write') {
      const w = /^(\S+)\s?(.*)$/.exec(arg);
      if (!w?.[1]) continue;
      const action: Action = { kind: 'write', path: w[1], content: unescape(w[2] ?? '') };
      if (canRun(action)) {
        steps.push({ action, mods: pending });
        pending = {};
      }
    } else if (verb === 'force-bash') {
      if (!arg) continue;
      steps.push({ action: { kind: 'bash', command: arg, forced: true }, mods: pending });
      pending = {};
    } else if (verb === 'bash') {
      if (!arg) continue;
      const action: Action = { kind: 'bash', command: arg };
      if (canRun(action)) {
        steps.push({ action, mods: pending });
        pending = {};
      }
    } else if (verb === 'tool') {
      const t = /^(\S+)\s*(.*)$/.exec(arg);
      if (!t?.[1]) continue;
      let input: unknown = {};
      try {
        input = t[2] ? JSON.parse(t[2]) : {};
      } catch {
        continue;
      }
      if (!input || typeof input !== 'object' || Array.isArray(input)) continue;
      const action: Action = { kind: 'tool', name: t[1], input: input as Record<string, unknown> };
      if (canRun(action)) {
        steps.push({ action, mods: pending });
        pending = {};
      }
    } else if (verb === 'cost') {
      const n = Number.parseInt(arg, 10);
      if (Number.isFinite(n) && n >= 0) pending.cost = n;
    } else if (verb === 'fail') {
      const [s, t] = arg.split(/\s+/);
      const status = Number.parseInt(s ?? '', 10);
      const times = t === undefined ? Infinity : Number.parseInt(t, 10);
      if (status >= 400 && status <= 599)
        pending.fail = { status, times: Number.isFinite(times) ? times : Infinity };
    } else if (verb === 'sleep') {
      const ms = Number.parseInt(arg, 10);
      if (Number.isFinite(ms) && ms >= 0) pending.sleepMs = ms;
    } else if (verb === 'say') {
      say = arg;
    }
  }
  return { steps, final: pending, say, directiveCount };
}

type RoleKind = 'plan' | 'develop' | 'test' | 'review' | 'docs' | 'deploy' | 'general';

const ROLE_WORDS: Array<[RoleKind, RegExp]> = [
  ['plan', /^(plan|planner|planning|architect|architecture|design|designer|analyst|analysis|requirements)/],
  [
    'develop',
    /^(develop|developer|development|dev|implement|implementer|implementation|engineer|coder|programmer|build)/,
  ],
  ['test', /^(test|tester|testing|qa|quality|verif)/],
  ['review', /^(review|reviewer|audit|auditor|security)/],
  ['docs', /^(doc|docs|documentation|writer|technical-writer|documenter)/],
  ['deploy', /^(deploy|deployer|deployment|devops|release|ops)/],
];

function kindOfWord(word: string): RoleKind | undefined {
  const w = word.toLowerCase();
  return ROLE_WORDS.find(([, re]) => re.test(w))?.[0];
}

/**
 * The agent's role, from an explicit `Role: X` / `Phase: X` line or a "You are the X" phrase in the system
 * prompt or task. The CLI's own system prompt contains neither, so only what the orchestrator adds counts.
 */
export function findRole(system: string, task: string): { name: string; kind: RoleKind } {
  for (const text of [system, task]) {
    for (const m of text.matchAll(/^\s*(?:role|phase|agent role)\s*[:=]\s*([A-Za-z][\w-]*)/gim)) {
      const name = m[1] ?? '';
      const kind = kindOfWord(name);
      if (kind) return { name, kind };
    }
    for (const m of text.matchAll(/\byou are (?:the|a|an) ([A-Za-z-]+)/gi)) {
      const name = m[1] ?? '';
      const kind = kindOfWord(name);
      if (kind) return { name, kind };
    }
  }
  return { name: 'assistant', kind: 'general' };
}

const ROLE_OUTPUT: Record<RoleKind, { file: string; title: string; bullets: string[] }> = {
  plan: {
    file: 'plan.md',
    title: 'Plan',
    bullets: [
      'Clarify the requirements',
      'Split the work into modules',
      'Implement and test each module',
      'Review and document',
    ],
  },
  develop: {
    file: 'implementation.md',
    title: 'Implementation notes',
    bullets: [
      'Added the core module with its public API',
      'Handled errors at the boundaries',
      'Kept functions small and tested',
    ],
  },
  test: {
    file: 'test-report.md',
    title: 'Test report',
    bullets: [
      'Unit tests cover the public API',
      'Edge cases: empty input, invalid input',
      'Result: all checks pass',
    ],
  },
  review: {
    file: 'review.md',
    title: 'Review',
    bullets: [
      'The design matches the plan',
      'No blocking issues found',
      'Minor: naming could be clearer in places',
    ],
  },
  docs: {
    file: 'docs.md',
    title: 'Documentation',
    bullets: ['Overview of the project', 'How to install and run it', 'Configuration reference'],
  },
  deploy: {
    file: 'deployment.md',
    title: 'Deployment',
    bullets: ['Build the artifacts', 'Run the smoke checks', 'Roll out and monitor'],
  },
  general: {
    file: 'notes.md',
    title: 'Notes',
    bullets: ['Read the task', 'Did the work', 'Summarised the outcome'],
  },
};

function firstLine(task: string): string {
  const line =
    task
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l && !l.startsWith('<') && !l.startsWith('@')) ?? '';
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

function roleDocument(kind: RoleKind, task: string): string {
  const out = ROLE_OUTPUT[kind];
  const t = firstLine(task);
  return `# ${out.title}\n\n${t ? `Task: ${t}\n\n` : ''}${out.bullets.map((b, i) => `${i + 1}. ${b}`).join('\n')}\n`;
}

function roleText(role: { name: string; kind: RoleKind }, task: string): string {
  const out = ROLE_OUTPUT[role.kind];
  const t = firstLine(task);
  const head = role.kind === 'general' ? 'Done.' : `As ${role.name}: ${out.title.toLowerCase()} ready.`;
  return `${head}${t ? ` Task: ${t}.` : ''} ${out.bullets.join('; ')}.`;
}

/** A relative file path with an extension, as task prompts name outputs (`data/schema.sql`). */
const FILE_PATH = /(?:^|[\s(`'"])((?:[\w-]+\/)*[\w-]+\.[A-Za-z0-9]{1,5})(?=$|[\s),.;:`'"])/g;

/**
 * The files a task asks to be written: paths after "write"/"create"/"produce" up to the end of that
 * sentence, and `<dir>/IMPLEMENTATION.md` for "implement … under <dir>/". Paths only read (before the
 * verb) do not count.
 */
export function namedOutputs(task: string): string[] {
  const out: string[] = [];
  for (const sentence of task.split(/(?<=[.!?])\s+|\n\s*\n/)) {
    const verb = /\b(?:write|create|produce)s?\b/i.exec(sentence);
    if (verb) {
      for (const m of sentence.slice(verb.index + verb[0].length).matchAll(FILE_PATH)) out.push(m[1]!);
    }
    const under = /\bimplement\b[^.]*?\bunder\s+((?:[\w-]+\/)*[\w-]+)\//i.exec(sentence);
    if (under) out.push(`${under[1]}/IMPLEMENTATION.md`);
  }
  return [...new Set(out)].filter((p) => !p.startsWith('/') && !p.split('/').includes('..'));
}

type ToolFamily = 'cli' | 'api' | 'none';

function toolFamily(toolNames: string[]): ToolFamily {
  if (toolNames.includes('Write') || toolNames.includes('Bash')) return 'cli';
  if (toolNames.includes('write_file') || toolNames.includes('run_command')) return 'api';
  return 'none';
}

function toolUse(action: Action, family: ToolFamily, cwd: string | undefined): ReplyBlock {
  if (action.kind === 'tool') return { type: 'tool_use', name: action.name, input: action.input };
  if (action.kind === 'write') {
    if (family === 'cli') {
      const filePath = path.isAbsolute(action.path) || !cwd ? action.path : path.join(cwd, action.path);
      return { type: 'tool_use', name: 'Write', input: { file_path: filePath, content: action.content } };
    }
    return { type: 'tool_use', name: 'write_file', input: { path: action.path, content: action.content } };
  }
  if (family === 'cli') {
    return {
      type: 'tool_use',
      name: 'Bash',
      input: { command: action.command, description: 'Run a rehearsal step' },
    };
  }
  return { type: 'tool_use', name: 'run_command', input: { argv: ['sh', '-c', action.command] } };
}

function describe(action: Action): string {
  if (action.kind === 'tool') return `called ${action.name}`;
  return action.kind === 'write' ? `wrote ${action.path}` : `ran \`${action.command}\``;
}

function applyMods(
  mods: Modifiers,
  attempt: number,
  reply: Extract<BrainReply, { type: 'message' }>,
): BrainReply {
  if (mods.fail && attempt <= mods.fail.times) {
    return {
      type: 'error',
      fault: { status: mods.fail.status, message: `rehearsal: @fail ${mods.fail.status}` },
    };
  }
  return {
    ...reply,
    ...(mods.cost !== undefined ? { outputTokens: mods.cost } : {}),
    ...(mods.sleepMs !== undefined ? { delayMs: mods.sleepMs } : {}),
  };
}

/**
 * The default brain: performs the task prompt's directives one tool call per turn, then summarises; without
 * directives it answers as the role found in the system prompt and, if it may write files, writes one
 * role-appropriate markdown file first; a team agent (offered the team's `complete_task` tool) then marks its
 * work done.
 */
export const rehearsalBrain: Brain = (req) => {
  const task = firstUserText(req.messages);
  const family = toolFamily(req.toolNames);
  const can = (a: Action) =>
    a.kind === 'tool'
      ? req.toolNames.includes(a.name)
      : family === 'cli'
        ? req.toolNames.includes(a.kind === 'write' ? 'Write' : 'Bash')
        : family === 'api' && req.toolNames.includes(a.kind === 'write' ? 'write_file' : 'run_command');
  const parsed = parseDirectives(task, can);
  // Role lines may arrive as mid-conversation `system` entries as well as in the system prompt.
  const systemTexts = [
    req.system,
    ...req.messages.filter((m) => m.role === 'system').map((m) => textOf(m.content)),
  ];
  const role = findRole(systemTexts.join('\n'), task);
  const cwd = findCwd(req.system, req.messages);
  const done = countToolResults(req.messages);

  if (parsed.directiveCount === 0) {
    // Without directives the brain answers what was asked last (a resumed session's new prompt): it
    // writes the files the task names (so a preset phase's artifacts appear), else its role's document,
    // one per turn.
    const asked = lastUserText(req.messages);
    const named = namedOutputs(asked);
    const files = named.length > 0 ? named : [ROLE_OUTPUT[role.kind].file];
    const doc: Action = {
      kind: 'write',
      path: files[Math.min(done.total, files.length - 1)]!,
      content: roleDocument(role.kind, asked),
    };
    if (done.total < files.length && can(doc)) {
      return {
        type: 'message',
        content: [{ type: 'text', text: `Writing ${doc.path}.` }, toolUse(doc, family, cwd)],
      };
    }
    // A team agent (it is offered the team tools) reports its work done, once: a rehearsed team ends
    // with its agents completed rather than out of rounds with their tasks open.
    const complete: Action = { kind: 'tool', name: TEAM_COMPLETE_TOOL, input: { task: 'all' } };
    if (can(complete) && !calledTool(req.messages, TEAM_COMPLETE_TOOL)) {
      return {
        type: 'message',
        content: [{ type: 'text', text: 'My work is done.' }, toolUse(complete, family, cwd)],
      };
    }
    return { type: 'message', content: [{ type: 'text', text: roleText(role, asked) }] };
  }

  const step = parsed.steps[done.total];
  if (step?.action) {
    return applyMods(step.mods, req.attempt, {
      type: 'message',
      content: [
        { type: 'text', text: `Step ${done.total + 1}: ${describe(step.action)}.` },
        toolUse(step.action, family, cwd),
      ],
    });
  }
  const summary =
    parsed.say ??
    (parsed.steps.length === 0
      ? roleText(role, task)
      : `Done: ${parsed.steps.map((s) => (s.action ? describe(s.action) : '')).join('; ')}.` +
        (done.failed > 0 ? ` ${done.failed} step(s) failed.` : ''));
  return applyMods(parsed.final, req.attempt, {
    type: 'message',
    content: [{ type: 'text', text: summary }],
  });
};
