/**
 * OpenTelemetry traces of a worker, loaded only when configuration asks for them (config/env.ts:
 * OTEL_EXPORTER_OTLP_ENDPOINT). Spans go as OTLP/HTTP JSON to the collector through a batching
 * processor:
 *
 * - workflow spans (`RunWorkflow:projectWorkflow`, `StartActivity:…`, `StartChildWorkflow:…`) come from
 *   Temporal's workflow interceptors in the traced workflow bundle, out of the sandbox through the
 *   `exporter` sink; `Phase:<name>` spans from workflows/otel-interceptors.ts the same way;
 * - activity spans (`RunActivity:<type>`) from Temporal's activity interceptor, joined to the workflow's
 *   trace by the context it puts in the activity's headers;
 * - model calls: the `apiTurn` (one Messages API request) and `claudeTurn` (one Claude Code turn) activity
 *   spans, which {@link ModelCallAttributes} gives the run, the agent, the model and the tokens and cost.
 */
import * as otel from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { Next } from '@temporalio/common';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
  InjectedSinks,
} from '@temporalio/worker';
import type { AppConfig } from '../config/env';

/** The activities that are one agent model call each. */
export const MODEL_CALL_ACTIVITIES: ReadonlySet<string> = new Set(['apiTurn', 'claudeTurn']);

/** What a worker adds to its options to trace, and how it flushes at the end. */
export interface WorkerTracing {
  activityInterceptors: ActivityInterceptorsFactory[];
  sinks: InjectedSinks<Record<string, never>>;
  /** Exports what is buffered and stops the exporter (call once the worker has stopped). */
  shutdown(): Promise<void>;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * The attributes of a model-call activity's span, from its input and result. Pure, so that what a span
 * says is unit-tested; values that are absent are left out.
 */
export function modelCallAttributes(activityType: string, arg: unknown, result: unknown): otel.Attributes {
  const a = (arg ?? {}) as { runId?: unknown; agentId?: unknown; model?: unknown };
  const r = (result ?? {}) as {
    model?: unknown;
    costUsd?: unknown;
    /** The api backend's Messages API usage, or the cli backend's per-turn totals. */
    usage?: {
      input_tokens?: unknown;
      output_tokens?: unknown;
      cache_read_input_tokens?: unknown;
      cache_creation_input_tokens?: unknown;
      inputTokens?: unknown;
      outputTokens?: unknown;
    };
  };
  const attrs: otel.Attributes = {
    'orchestrator.model_call': true,
    'gen_ai.system': 'anthropic',
    'gen_ai.operation.name': activityType === 'apiTurn' ? 'chat' : 'claude_code_turn',
  };
  if (typeof a.runId === 'string') attrs['orchestrator.run'] = a.runId;
  if (typeof a.agentId === 'string') attrs['orchestrator.agent'] = a.agentId;
  if (typeof a.model === 'string') attrs['gen_ai.request.model'] = a.model;
  if (typeof r.model === 'string') attrs['gen_ai.response.model'] = r.model;
  const input = num(r.usage?.input_tokens) ?? num(r.usage?.inputTokens);
  const output = num(r.usage?.output_tokens) ?? num(r.usage?.outputTokens);
  const cost = num(r.costUsd);
  if (input !== undefined) attrs['gen_ai.usage.input_tokens'] = input;
  if (output !== undefined) attrs['gen_ai.usage.output_tokens'] = output;
  // api agents cache their stable prefix: those tokens are served and charged too.
  const cacheRead = num(r.usage?.cache_read_input_tokens);
  const cacheWrite = num(r.usage?.cache_creation_input_tokens);
  if (cacheRead !== undefined) attrs['gen_ai.usage.cache_read.input_tokens'] = cacheRead;
  if (cacheWrite !== undefined) attrs['gen_ai.usage.cache_creation.input_tokens'] = cacheWrite;
  if (cost !== undefined) attrs['orchestrator.cost_usd'] = cost;
  return attrs;
}

/** Registered after Temporal's activity interceptor: its `RunActivity` span is the active one here. */
class ModelCallAttributes implements ActivityInboundCallsInterceptor {
  constructor(private readonly activityType: string) {}
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
    const span = otel.trace.getActiveSpan();
    const arg: unknown = input.args[0];
    span?.setAttributes(modelCallAttributes(this.activityType, arg, undefined));
    const result = await next(input);
    span?.setAttributes(modelCallAttributes(this.activityType, arg, result));
    return result;
  }
}

/**
 * Starts the exporter and a tracer provider registered as the process's global one (with Node's async
 * context, so activity code's spans nest under its activity span).
 */
export function startTracing(tracing: NonNullable<AppConfig['tracing']>): WorkerTracing {
  const resource = new Resource({ 'service.name': tracing.serviceName });
  const processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: tracing.tracesUrl }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  provider.register();
  return {
    activityInterceptors: [
      (ctx) => ({
        inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
        outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
      }),
      (ctx) =>
        MODEL_CALL_ACTIVITIES.has(ctx.info.activityType)
          ? { inbound: new ModelCallAttributes(ctx.info.activityType) }
          : {},
    ],
    sinks: { exporter: makeWorkflowExporter(processor, resource) } as unknown as InjectedSinks<
      Record<string, never>
    >,
    shutdown: () => provider.shutdown(),
  };
}
