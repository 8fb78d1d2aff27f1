/**
 * Tolerant parser of `claude -p --output-format stream-json --verbose` output: one JSON object per line.
 * Pure (no I/O) so it can be fed from a live process, a saved transcript or a test fixture alike.
 *
 * The CLI adds optional fields and new line `type`s often, so everything unknown is ignored and only the
 * fields this project uses are validated. A line that is not JSON (or a `result` line whose known fields
 * have the wrong type) is reported as `malformed`; the parser never throws.
 */
import { z } from 'zod';

/** Per-model usage in a `result` line's `modelUsage` (everything the session used, subagents included). */
export const ModelUsageSchema = z.looseObject({
  inputTokens: z.number().default(0),
  outputTokens: z.number().default(0),
  cacheReadInputTokens: z.number().default(0),
  cacheCreationInputTokens: z.number().default(0),
  costUSD: z.number().default(0),
});
export type ModelUsage = z.infer<typeof ModelUsageSchema>;

/**
 * The final line of a turn. Loose: new fields pass through untouched. `total_cost_usd` is cumulative for
 * the session (it carries over on `--resume`).
 */
export const ResultLineSchema = z.looseObject({
  type: z.literal('result'),
  subtype: z.string(),
  is_error: z.boolean().default(false),
  duration_ms: z.number().optional(),
  duration_api_ms: z.number().optional(),
  num_turns: z.number().optional(),
  result: z.string().optional(),
  errors: z.array(z.string()).optional(),
  session_id: z.string().optional(),
  total_cost_usd: z.number().optional(),
  usage: z.looseObject({}).optional(),
  modelUsage: z.record(z.string(), ModelUsageSchema).optional(),
  api_error_status: z.number().nullable().optional(),
  api_error_type: z.string().nullable().optional(),
  terminal_reason: z.string().nullable().optional(),
  stop_reason: z.string().nullable().optional(),
  permission_denials: z.array(z.unknown()).optional(),
});
export type ResultLine = z.infer<typeof ResultLineSchema>;

const ContentBlockSchema = z.looseObject({
  type: z.string(),
  name: z.string().optional(),
  text: z.string().optional(),
});

const AssistantLineSchema = z.looseObject({
  type: z.literal('assistant'),
  message: z.looseObject({
    id: z.string().optional(),
    model: z.string().optional(),
    content: z.array(z.unknown()).default([]),
  }),
  parent_tool_use_id: z.string().nullable().optional(),
  session_id: z.string().optional(),
});

const InitLineSchema = z.looseObject({
  type: z.literal('system'),
  subtype: z.literal('init'),
  session_id: z.string().optional(),
  model: z.string().optional(),
});

/** What one line meant; `malformed` lines are for the caller to log. */
export type StreamEvent =
  | { kind: 'blank' }
  | { kind: 'init'; sessionId?: string; model?: string }
  | { kind: 'assistant'; turn: number; toolUses: string[]; text: string; subagent: boolean }
  | { kind: 'result'; result: ResultLine }
  | { kind: 'other'; type: string; subtype?: string }
  | { kind: 'malformed'; error: string };

/** Accumulated knowledge about a run; {@link feedLine} updates it in place. */
export interface StreamState {
  sessionId?: string;
  model?: string;
  /** Main-loop assistant messages seen (the CLI may split one message over several lines). */
  turns: number;
  /** Name of the most recent `tool_use` block, subagents included. */
  lastTool?: string;
  /** The last `result` line: a run can print several, the last one is final. */
  lastResult?: ResultLine;
  resultCount: number;
  lines: number;
  malformed: number;
  /** Message id of the previous main-loop assistant line, to count a split message once. */
  lastMessageId?: string;
}

/** A fresh state for one CLI run. */
export function createStreamState(): StreamState {
  return { turns: 0, resultCount: 0, lines: 0, malformed: 0 };
}

function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parses one stdout line and folds it into `state`. Never throws. */
export function feedLine(state: StreamState, line: string): StreamEvent {
  const trimmed = line.trim();
  if (trimmed === '') return { kind: 'blank' };
  state.lines += 1;

  let obj: unknown;
  try {
    obj = JSON.parse(trimmed);
  } catch (err) {
    state.malformed += 1;
    return { kind: 'malformed', error: `not JSON: ${(err as Error).message}` };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    state.malformed += 1;
    return { kind: 'malformed', error: 'not a JSON object' };
  }
  const type = (obj as { type?: unknown }).type;
  const subtype = (obj as { subtype?: unknown }).subtype;
  if (typeof type !== 'string') {
    state.malformed += 1;
    return { kind: 'malformed', error: 'missing "type"' };
  }

  switch (type) {
    case 'system': {
      if (subtype !== 'init') break;
      const init = InitLineSchema.safeParse(obj);
      if (!init.success) break;
      if (init.data.session_id) state.sessionId = init.data.session_id;
      if (init.data.model) state.model = init.data.model;
      return { kind: 'init', sessionId: init.data.session_id, model: init.data.model };
    }
    case 'assistant': {
      const a = AssistantLineSchema.safeParse(obj);
      if (!a.success) {
        state.malformed += 1;
        return { kind: 'malformed', error: `assistant line: ${zodMessage(a.error)}` };
      }
      const subagent = a.data.parent_tool_use_id != null;
      const toolUses: string[] = [];
      let text = '';
      for (const raw of a.data.message.content) {
        const block = ContentBlockSchema.safeParse(raw);
        if (!block.success) continue;
        if (block.data.type === 'tool_use' && block.data.name) toolUses.push(block.data.name);
        if (block.data.type === 'text' && block.data.text) text += block.data.text;
      }
      const last = toolUses.at(-1);
      if (last) state.lastTool = last;
      if (!subagent) {
        const id = a.data.message.id;
        if (id === undefined || id !== state.lastMessageId) state.turns += 1;
        state.lastMessageId = id;
        if (a.data.message.model && !state.model) state.model = a.data.message.model;
      }
      return { kind: 'assistant', turn: state.turns, toolUses, text, subagent };
    }
    case 'user':
      // A tool round trip ends the current assistant message; the next assistant line is a new turn even
      // if a server reuses message ids.
      if ((obj as { parent_tool_use_id?: unknown }).parent_tool_use_id == null)
        state.lastMessageId = undefined;
      break;
    case 'result': {
      const r = ResultLineSchema.safeParse(obj);
      if (!r.success) {
        state.malformed += 1;
        return { kind: 'malformed', error: `result line: ${zodMessage(r.error)}` };
      }
      state.lastResult = r.data;
      state.resultCount += 1;
      if (r.data.session_id) state.sessionId ??= r.data.session_id;
      return { kind: 'result', result: r.data };
    }
    default:
      break;
  }
  return typeof subtype === 'string' ? { kind: 'other', type, subtype } : { kind: 'other', type };
}

/** Token totals over every model of a result's `modelUsage`. */
export interface UsageTotals {
  inputTokens: number;
  outputTokens: number;
  cacheRead: number;
  cacheCreation: number;
}

/** Sums `modelUsage` (all models, subagents included); the `usage` field covers the main loop only. */
export function sumModelUsage(modelUsage: Record<string, ModelUsage> | undefined): UsageTotals {
  const t: UsageTotals = { inputTokens: 0, outputTokens: 0, cacheRead: 0, cacheCreation: 0 };
  for (const u of Object.values(modelUsage ?? {})) {
    t.inputTokens += u.inputTokens;
    t.outputTokens += u.outputTokens;
    t.cacheRead += u.cacheReadInputTokens;
    t.cacheCreation += u.cacheCreationInputTokens;
  }
  return t;
}
