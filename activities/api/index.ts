/**
 * The `api` backend: one model turn per activity through `@anthropic-ai/sdk`. The workflow owns the
 * conversation and the tool loop (each tool call is a `runTool` activity); this activity streams one answer,
 * heartbeats while it streams, writes the full response to the agent's transcript and returns a summary.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { ConfigError } from '../../config/errors';
import { priceUsage } from '../../config/pricing';
import type { Logger } from '../../src/logger';
import type { MeterGateway } from '../../src/meter/gateway';
import { BUDGET_EXCEEDED, MeterInputSchema, openMeter, runLimitsFrom } from '../meter';
import { redact } from '../../src/redact';
import { capText } from '../tools/process';
import { toolDefinitions } from '../tools/tools';
import { ApiFailureType, classifyAnthropicError } from './errors';
import { FileIdSchema, SafeNameSchema } from '../../src/shared/ids';
import type { Sandbox } from '../sandbox';
import { recordSandbox } from '../sandbox/record';
import { TurnHeartbeat, type TurnNudges } from '../turn-heartbeat';

export { classifyAnthropicError, retryAfterMs, ApiFailureType, NON_RETRYABLE_API_FAILURES } from './errors';

const ContentBlockSchema = z.looseObject({ type: z.string() });
export const ApiMessageSchema = z.object({
  role: z.enum(['user', 'assistant', 'system']),
  content: z.union([z.string(), z.array(ContentBlockSchema).min(1, 'must not be empty')]),
});
export type ApiMessage = z.infer<typeof ApiMessageSchema>;

export const ApiTurnInputSchema = z.object({
  runId: SafeNameSchema,
  /** `<phase>-<agent>`: it names the transcript file. */
  agentId: FileIdSchema,
  /** The run's outputs folder (recorded at run start); default the worker's ORCHESTRATOR_OUTPUTS_DIR. */
  outputsDir: z.string().startsWith('/', 'must be an absolute path').optional(),
  model: z.string().min(1),
  system: z.string().default(''),
  /** The conversation so far, in Messages API format; it ends with the user turn to answer. */
  messages: z.array(ApiMessageSchema).min(1, 'must contain at least one message'),
  /** Offer the workspace tools (activities/tools) to the model. */
  tools: z.boolean().default(false),
  /** The tools offered, when not all: the agent's `allowed_tools`. */
  allowedTools: z.array(z.string()).optional(),
  maxTokens: z.number().int().positive(),
  /** Wall-clock limit of the turn (the agent's `timeout_s`): past it the request is aborted as hung. */
  timeoutS: z.number().positive().optional(),
  /** Seconds without a stream event before the turn counts as hung; default 5 min. */
  hangAfterS: z.number().positive().optional(),
  /** The meter this turn spends on, and its limits; default: a meter named after `agentId`. */
  meter: MeterInputSchema.optional(),
});
export type ApiTurnInput = z.input<typeof ApiTurnInputSchema>;

export const UsageSchema = z.object({
  input_tokens: z.number(),
  output_tokens: z.number(),
  cache_creation_input_tokens: z.number(),
  cache_read_input_tokens: z.number(),
  cache_creation: z
    .object({ ephemeral_5m_input_tokens: z.number(), ephemeral_1h_input_tokens: z.number() })
    .optional(),
});
export type TurnUsage = z.infer<typeof UsageSchema>;

export const ToolUseSchema = z.object({ id: z.string(), name: z.string(), input: z.unknown() });
export type ToolUse = z.infer<typeof ToolUseSchema>;

/** Max characters of answer text returned in the result (the transcript has all of it). */
export const TURN_TEXT_CAP_BYTES = 64 * 1024;

export const ApiTurnResultSchema = z.object({
  messageId: z.string(),
  /** The model the response names; the one `costUsd` is priced on. */
  model: z.string(),
  stop_reason: z.string().nullable(),
  /** The answer's text blocks joined, capped at {@link TURN_TEXT_CAP_BYTES}. */
  text: z.string(),
  usage: UsageSchema,
  costUsd: z.number(),
  /** The same in integer micro-dollars, when metered. */
  microUsd: z.number().int().optional(),
  /** Set when the served model is not in the price table (charged at its family's dearest price). */
  unknownModel: z.boolean().optional(),
  tool_uses: z.array(ToolUseSchema),
  /** Absolute path of the agent's transcript (JSONL). */
  transcriptPath: z.string(),
});
export type ApiTurnResult = z.infer<typeof ApiTurnResultSchema>;

export interface ApiActivityDeps {
  logger: Logger;
  anthropic: { apiKey?: string; baseURL?: string };
  /** Root for run outputs; transcripts go to `<outputsDir>/<runId>/agents/<agentId>.jsonl`. */
  outputsDir: string;
  /** The metering gateway; without one the SDK calls the API directly and the turn is priced here. */
  gateway?: () => Promise<MeterGateway>;
  /** The sandbox this agent's `run_command` and `git` tools run in: recorded for `run status`. */
  sandbox?: Sandbox;
  /** Nudges a turn whose agent workflow was cancelled into noticing at once (../turn-heartbeat). */
  nudges?: TurnNudges;
}

/** Where an agent's transcript lives. */
export function transcriptPath(outputsDir: string, runId: string, agentId: string): string {
  return path.join(outputsDir, runId, 'agents', `${agentId}.jsonl`);
}

async function appendJsonl(file: string, record: Record<string, unknown>): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  // Tool results (a command's output) are part of the conversation: redacted before they are kept.
  await fs.appendFile(file, `${redact(JSON.stringify({ at: new Date().toISOString(), ...record }))}\n`);
}

/** The messages added since the last assistant turn: what is new in this request. */
function newMessages(messages: ApiMessage[]): { messages: ApiMessage[]; firstTurn: boolean } {
  const lastAssistant = messages.map((m) => m.role).lastIndexOf('assistant');
  return { messages: messages.slice(lastAssistant + 1), firstTurn: lastAssistant === -1 };
}

export function createApiActivities({
  logger,
  anthropic,
  outputsDir,
  gateway,
  sandbox,
  nudges,
}: ApiActivityDeps) {
  let client: Anthropic | undefined;
  // Built on first use: a worker without credentials can still run every other activity.
  const getClient = () =>
    (client ??= new Anthropic({ apiKey: anthropic.apiKey, baseURL: anthropic.baseURL, maxRetries: 0 }));

  return {
    /**
     * Streams one model turn. Throws ApplicationFailures typed by {@link classifyAnthropicError}
     * (`RateLimited` and `ApiUnavailable` retryable; `InvalidRequest`, `AuthenticationFailed`,
     * `UnknownModel` not), or a CancelledFailure when the activity is cancelled.
     */
    apiTurn: async (raw: ApiTurnInput): Promise<ApiTurnResult> => {
      const parsed = ApiTurnInputSchema.safeParse(raw);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: ApiFailureType.InvalidRequest,
          message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
          nonRetryable: true,
        });
      }
      const input = parsed.data;
      const ctx = Context.current();
      // The run's recorded outputs folder; the worker's own only for callers that do not pass one.
      const file = transcriptPath(input.outputsDir ?? outputsDir, input.runId, input.agentId);
      const log = logger.child({ runId: input.runId, agentId: input.agentId, attempt: ctx.info.attempt });
      const fresh = newMessages(input.messages);
      // `run status` says which confinement this run's agents (their tools) got.
      if (sandbox) recordSandbox(path.dirname(path.dirname(file)), await sandbox.state());
      await appendJsonl(file, {
        type: 'request',
        attempt: ctx.info.attempt,
        model: input.model,
        maxTokens: input.maxTokens,
        tools: input.tools,
        ...(fresh.firstTurn ? { system: input.system } : {}),
        messages: fresh.messages,
      });

      const handle = gateway
        ? await openMeter(
            gateway,
            input.runId,
            input.meter ?? { id: input.agentId, phase: '', agent: input.agentId, limits: {} },
            {},
            // A workflow's turn: the run says which limits bind it (see openMeter).
            input.meter ? runLimitsFrom(ctx.client) : undefined,
          )
        : undefined;
      // One client per metered turn: its base URL names this agent's meter on the gateway.
      const turnClient = handle
        ? new Anthropic({
            apiKey: handle.clientKey ?? anthropic.apiKey ?? 'none',
            baseURL: handle.baseURL,
            maxRetries: 0,
          })
        : getClient();
      let message: Anthropic.Message;
      // A stalled stream sends nothing: a timer heartbeats, and ends the request when no event arrived
      // for the hang limit or the turn outlived timeout_s. Either is the agent's failure AgentHung.
      const abort = new AbortController();
      const onCancel = () => abort.abort(ctx.cancellationSignal.reason);
      ctx.cancellationSignal.addEventListener('abort', onCancel);
      const started = Date.now();
      const hangAfterMs = (input.hangAfterS ?? 300) * 1000;
      let lastEventAt = started;
      let events = 0;
      let streamedChars = 0;
      let hung: string | undefined;
      const heartbeat = new TurnHeartbeat(ctx, nudges);
      const watch = setInterval(() => {
        const now = Date.now();
        heartbeat.beat({ streamedChars, events, lastEventAt });
        if (hung) return;
        if (now - lastEventAt > hangAfterMs)
          hung = `no stream event for ${Math.round((now - lastEventAt) / 1000)} s`;
        else if (input.timeoutS !== undefined && now - started > input.timeoutS * 1000)
          hung = `the turn outlived its timeout_s (${input.timeoutS} s)`;
        if (hung) abort.abort(new Error(hung));
      }, 1000);
      try {
        const stream = turnClient.messages.stream(
          {
            model: input.model,
            max_tokens: input.maxTokens,
            // The stable prefix (tools, then the system prompt) is marked for prompt caching: every later
            // turn of the agent reads it from the cache instead of paying for it again.
            ...(input.system
              ? { system: [{ type: 'text', text: input.system, cache_control: { type: 'ephemeral' } }] }
              : {}),
            // Validated above as Messages API messages; the SDK's union of block types is far richer than
            // what the schema spells out, so the shape is asserted rather than re-declared.
            messages: input.messages as Anthropic.MessageParam[],
            ...(input.tools
              ? {
                  tools: input.allowedTools
                    ? toolDefinitions.filter((t) => input.allowedTools?.includes(t.name))
                    : toolDefinitions,
                }
              : {}),
          },
          { signal: abort.signal },
        );
        stream.on('streamEvent', (event) => {
          events += 1;
          lastEventAt = Date.now();
          if (event.type === 'content_block_delta') {
            streamedChars +=
              event.delta.type === 'text_delta'
                ? event.delta.text.length
                : event.delta.type === 'input_json_delta'
                  ? event.delta.partial_json.length
                  : 0;
          }
          // Each event is a sign of life; the pacer sends one every couple of seconds (or fast when nudged).
          heartbeat.beat({ streamedChars, events, lastEventAt });
        });
        message = await stream.finalMessage();
      } catch (err) {
        handle?.close();
        const refusal = handle?.refusal();
        if (refusal) {
          log.warn({ reason: refusal.message }, 'api turn refused by its budget');
          await appendJsonl(file, { type: 'budget_refused', reason: refusal.message });
          throw ApplicationFailure.create({
            type: BUDGET_EXCEEDED,
            message: refusal.message,
            nonRetryable: true,
            details: [{ budgetRefusal: refusal, costUsd: 0, microUsd: 0 }],
          });
        }
        if (hung && !ctx.cancellationSignal.aborted) {
          log.warn({ why: hung, events, streamedChars }, 'api turn ended as hung');
          await appendJsonl(file, { type: 'error', failureType: ApiFailureType.AgentHung, message: hung });
          throw ApplicationFailure.create({
            type: ApiFailureType.AgentHung,
            message: `model turn hung: ${hung}`,
            nonRetryable: true,
          });
        }
        if (ctx.cancellationSignal.aborted) {
          await appendJsonl(file, { type: 'cancelled' });
          const reason: unknown = ctx.cancellationSignal.reason;
          throw reason instanceof CancelledFailure ? reason : new CancelledFailure('cancelled');
        }
        const failure = classifyAnthropicError(err);
        log.warn(
          { type: failure.type, nonRetryable: failure.nonRetryable, err: failure.message },
          'api turn failed',
        );
        await appendJsonl(file, { type: 'error', failureType: failure.type, message: failure.message });
        throw failure;
      } finally {
        clearInterval(watch);
        heartbeat.stop();
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
      }

      let costUsd: number;
      let microUsd: number | undefined;
      let unknownModel: boolean | undefined;
      if (handle) {
        // The meter recorded the response on its way through: its figure is the charge.
        handle.close();
        const spent = handle.spent();
        microUsd = spent.microUsd;
        costUsd = microUsd / 1e6;
        unknownModel = spent.models[message.model]?.unknownModel;
      } else {
        try {
          costUsd = priceUsage(message.model, message.usage);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          throw ApplicationFailure.create({
            type: ApiFailureType.UnknownModel,
            message: err.message,
            nonRetryable: true,
          });
        }
      }
      await appendJsonl(file, {
        type: 'response',
        message,
        costUsd,
        ...(unknownModel ? { unknownModel } : {}),
      });

      const usage: TurnUsage = {
        input_tokens: message.usage.input_tokens,
        output_tokens: message.usage.output_tokens,
        cache_creation_input_tokens: message.usage.cache_creation_input_tokens ?? 0,
        cache_read_input_tokens: message.usage.cache_read_input_tokens ?? 0,
        ...(message.usage.cache_creation ? { cache_creation: message.usage.cache_creation } : {}),
      };
      const text = message.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('\n');
      const tool_uses = message.content.flatMap((b) =>
        b.type === 'tool_use' ? [{ id: b.id, name: b.name, input: b.input }] : [],
      );
      log.info(
        { model: message.model, stopReason: message.stop_reason, usage, costUsd, toolUses: tool_uses.length },
        'api turn done',
      );
      return {
        messageId: message.id,
        model: message.model,
        stop_reason: message.stop_reason,
        text: capText(text, TURN_TEXT_CAP_BYTES),
        usage,
        costUsd,
        ...(microUsd !== undefined ? { microUsd } : {}),
        ...(unknownModel ? { unknownModel } : {}),
        tool_uses,
        transcriptPath: file,
      };
    },
  };
}

export type ApiActivities = ReturnType<typeof createApiActivities>;
