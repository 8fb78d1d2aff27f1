/**
 * Tracing inside the workflow sandbox, in the traced bundle only (scripts/build-lib.mjs adds this module
 * and `@temporalio/interceptors-opentelemetry`'s workflow interceptors when the worker exports traces;
 * the default bundle has neither). Temporal's interceptors already give each workflow, signal, update,
 * activity and child start a span, exported through their `exporter` sink; this module adds what only
 * we know:
 *
 * - a `Phase:<name>` span around each phase attempt ({@link tracePhase}), active while the phase runs,
 *   so its agents' child workflows and their model calls nest under it;
 * - the run, phase and agent as attributes of the workflow spans.
 *
 * Spans are made from the workflow's deterministic clock and random source and write nothing to history,
 * so a traced worker and an untraced one produce the same histories. This is the one workflows/ file
 * allowed to import `@opentelemetry/api` (eslint.config.js).
 */
import * as otel from '@opentelemetry/api';
import { workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { installPhaseTracer, type PhaseTracer } from './trace';

/** Attribute names of ours on spans (the `orchestrator.` namespace). */
export const ATTR = {
  run: 'orchestrator.run',
  phase: 'orchestrator.phase',
  phaseIndex: 'orchestrator.phase_index',
  attempt: 'orchestrator.attempt',
  agent: 'orchestrator.agent',
} as const;

const phaseTracer: PhaseTracer = (info, fn) => {
  // The provider Temporal's workflow interceptors register; the active context is this workflow's.
  const span = otel.trace.getTracer('orchestrator').startSpan(`Phase:${info.phase}`, {
    attributes: {
      [ATTR.run]: info.runId,
      [ATTR.phase]: info.phase,
      [ATTR.phaseIndex]: info.index,
      [ATTR.attempt]: info.attempt,
    },
  });
  const running = otel.context.with(otel.trace.setSpan(otel.context.active(), span), fn);
  // Ended beside the caller's await, not in front of it: the caller gets `fn`'s own promise.
  running.then(
    () => {
      span.setStatus({ code: otel.SpanStatusCode.OK });
      span.end();
    },
    (err: unknown) => {
      span.setStatus({
        code: otel.SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message : String(err),
      });
      span.end();
    },
  );
  return running;
};

installPhaseTracer(phaseTracer);

/** The fields of a workflow input we name spans by (projectWorkflow's and agentWorkflow's). */
function runAttributes(arg: unknown): otel.Attributes {
  const attrs: otel.Attributes = { [ATTR.run]: workflowInfo().workflowId };
  if (arg === null || typeof arg !== 'object') return attrs;
  const a = arg as { runId?: unknown; phase?: unknown; agent?: { id?: unknown } };
  if (typeof a.runId === 'string') attrs[ATTR.run] = a.runId;
  if (typeof a.phase === 'string') attrs[ATTR.phase] = a.phase;
  if (typeof a.agent?.id === 'string') attrs[ATTR.agent] = a.agent.id;
  return attrs;
}

/** Registered after Temporal's: its `RunWorkflow` span is the active one when this runs. */
export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      execute(input, next) {
        otel.trace.getActiveSpan()?.setAttributes(runAttributes(input.args[0]));
        return next(input);
      },
    },
  ],
});
