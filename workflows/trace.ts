/**
 * A seam for tracing a phase attempt, inside the sandbox and without any tracing code in it. The
 * workflows call {@link tracePhase} around each phase attempt; with no tracer installed (the default
 * bundle) it is exactly `fn()`: the same promise, no extra yield, no command, so histories and replays
 * are unchanged and no `patched()` is involved. The traced bundle (workflows/otel-interceptors.ts, built
 * only when the worker exports traces) installs a tracer that opens a span around the attempt.
 */

/** What a phase span says about its attempt. */
export interface PhaseTraceInfo {
  runId: string;
  phase: string;
  /** 0-based position of the phase in the run. */
  index: number;
  attempt: number;
}

/** Runs `fn` inside a span for the phase; must return `fn`'s own promise (no extra yield). */
export type PhaseTracer = <T>(info: PhaseTraceInfo, fn: () => Promise<T>) => Promise<T>;

let tracer: PhaseTracer | undefined;

/**
 * Installs the phase tracer. Module state is shared by every workflow of a worker's sandbox context, so
 * the tracer must keep nothing per run (it reads the active trace context at each call).
 */
export function installPhaseTracer(t: PhaseTracer): void {
  tracer = t;
}

/** `fn()`, inside a phase span when a tracer is installed. */
export function tracePhase<T>(info: PhaseTraceInfo, fn: () => Promise<T>): Promise<T> {
  return tracer ? tracer(info, fn) : fn();
}
