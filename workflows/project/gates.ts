/**
 * A phase's gates, run after its agents and before its checkpoint. A failing gate retries the phase,
 * rolls it back, waits for update `approve`, or fails the run, by its `on_fail`; retries are counted per
 * phase and gate and carried across continue-as-new.
 */
import { condition, isCancellation, log } from '@temporalio/workflow';
import { OPERATOR } from '../../src/shared/identity';
import type { PhaseResult } from '../../src/shared/run';
import type { PhaseSpec } from '../../src/shared/spec';
import { countGate } from './metrics';
import { type GateEvaluation, onHost } from './proxies';
import { isHostLost } from '../host-lost';
import { failureMessage, type ProjectRun } from './run';

/** How a phase attempt ends because of its gates (undefined from {@link runGates}: it may go on). */
export type GateOutcome =
  | { kind: 'failed' }
  /** A `retry_phase` gate failed: run the phase again on top of its own work. */
  | { kind: 'retry'; gates: string[] }
  /** A `rollback` gate failed: restore the previous checkpoint (or the phase start) and run it again. */
  | { kind: 'rollback'; gates: string[] };

/** One gate's result, as far as the decision needs it. */
export type GateResult = GateEvaluation['results'][number];

/** What the failed gates of one attempt mean. */
export type GateDecision =
  /** No gate failed. */
  | { action: 'pass' }
  /** A `fail` gate failed, or a recoverable one has used its retries. */
  | { action: 'fail'; gates: string[]; errors: string[] }
  /** `retry_phase`/`rollback` gates failed with retries left: counted in `retries`. */
  | { action: 'retry_phase' | 'rollback'; gates: string[]; errors: string[]; retries: Record<string, number> }
  /** Only `pause_for_approval` gates failed: a human decides. */
  | { action: 'pause_for_approval'; gates: string[]; errors: string[] };

/** The retry counter's key: gates are counted per phase. */
export function gateRetryKey(index: number, gateId: string): string {
  return `${index}:${gateId}`;
}

/** One line per failed gate, with its evidence cut to 4,000 characters. */
export function gateErrors(failed: readonly GateResult[]): string[] {
  return failed.map(
    (g) =>
      `gate "${g.id}" (${g.kind}) failed: ${g.summary}; evidence: ${JSON.stringify(g.evidence).slice(0, 4000)}`,
  );
}

/**
 * The verdict of one attempt's gates: `fail` wins, then a recoverable gate out of retries, then retry or
 * rollback (rollback when any of them says so; `retries` holds the counters to store), else approval.
 */
export function decideGates(
  index: number,
  results: readonly GateResult[],
  retriesUsed: Readonly<Record<string, number>>,
): GateDecision {
  const failed = results.filter((g) => !g.passed);
  if (failed.length === 0) return { action: 'pass' };
  const errors = gateErrors(failed);
  const used = (id: string) => retriesUsed[gateRetryKey(index, id)] ?? 0;
  const recoverable = failed.filter((g) => g.on_fail === 'retry_phase' || g.on_fail === 'rollback');
  const exhausted = recoverable.filter((g) => used(g.id) >= (g.max_retries ?? 1));
  const fatal = failed.filter((g) => g.on_fail === 'fail');
  if (fatal.length > 0 || exhausted.length > 0) {
    return {
      action: 'fail',
      gates: [...fatal, ...exhausted].map((g) => g.id),
      errors: [
        ...errors,
        ...exhausted.map((g) => `gate "${g.id}": gave up after ${used(g.id)} ${g.on_fail} attempt(s)`),
      ],
    };
  }
  if (recoverable.length > 0) {
    const retries: Record<string, number> = {};
    for (const g of recoverable) retries[gateRetryKey(index, g.id)] = used(g.id) + 1;
    const rollback = recoverable.some((g) => g.on_fail === 'rollback');
    return {
      action: rollback ? 'rollback' : 'retry_phase',
      gates: recoverable.map((g) => g.id),
      errors,
      retries,
    };
  }
  return { action: 'pause_for_approval', gates: failed.map((g) => g.id), errors };
}

/**
 * Evaluates the phase's gates and acts on the decision. Returns undefined when the phase may take its
 * checkpoint (every gate passed, or a human approved the failures).
 */
export async function runGates(
  run: ProjectRun,
  index: number,
  phase: PhaseSpec,
  result: PhaseResult,
): Promise<GateOutcome | undefined> {
  const { audit } = run;
  let evaluation: GateEvaluation;
  try {
    evaluation = await onHost(run.st.host).governance.evaluateGates({
      workspace: run.input.workspace,
      phase: phase.name,
      gates: phase.gates,
    });
  } catch (err) {
    // A lost host is not the gates' verdict: the run moves (./hosts).
    if (isCancellation(err) || isHostLost(err)) throw err;
    const message = failureMessage(err);
    audit.record('gate', { phase: phase.name, attempt: result.attempt, passed: false, error: message });
    result.errors.push(`gates could not be evaluated: ${message}`);
    return { kind: 'failed' };
  }
  for (const g of evaluation.results) {
    countGate(run.runId, phase.name, g.id, g.passed);
    audit.record('gate', {
      phase: phase.name,
      attempt: result.attempt,
      gate: g.id,
      kind: g.kind,
      passed: g.passed,
      on_fail: g.on_fail,
      summary: g.summary,
      evidence: g.evidence,
    });
  }
  const d = decideGates(index, evaluation.results, run.st.gateRetries);
  if (d.action === 'pass') return undefined;
  const decide = (action: string, gates: string[]) =>
    audit.record('gate', { event: 'decision', phase: phase.name, attempt: result.attempt, action, gates });
  result.errors.push(...d.errors);
  decide(d.action, d.gates);
  if (d.action === 'fail') return { kind: 'failed' };
  if (d.action === 'rollback' || d.action === 'retry_phase') {
    Object.assign(run.st.gateRetries, d.retries);
    return d.action === 'rollback' ? { kind: 'rollback', gates: d.gates } : { kind: 'retry', gates: d.gates };
  }
  return waitForApproval(run, phase, result, d.gates, evaluation.results);
}

/** Pauses the run until update `approve`; the phase's gate errors are kept, marked as approved. */
async function waitForApproval(
  run: ProjectRun,
  phase: PhaseSpec,
  result: PhaseResult,
  gates: string[],
  results: readonly GateResult[],
): Promise<undefined> {
  const { runId, audit } = run;
  const failed = results.filter((g) => !g.passed);
  run.awaitingApproval = { phase: phase.name, gates };
  run.pauses.set(
    'approval',
    `phase "${phase.name}" waits for approval: ${failed.map((g) => `gate "${g.id}" failed (${g.summary})`).join(', ')}; ` +
      `continue with: orchestrator governance approve --run ${runId} --note <text>`,
  );
  audit.record('approval', { event: 'requested', phase: phase.name, attempt: result.attempt, gates });
  log.warn('paused: waiting for approval', { runId, phase: phase.name, gates });
  await audit.flush();
  let decision: { note: string; approver?: string } | undefined;
  try {
    await condition(() => run.awaitingApproval?.decision !== undefined);
    decision = run.awaitingApproval?.decision;
  } finally {
    run.pauses.delete('approval');
    run.awaitingApproval = undefined;
  }
  const by = decision?.approver ?? OPERATOR;
  result.errors = result.errors.map((e) => `approved by ${by} (${decision?.note ?? ''}): ${e}`);
  return undefined;
}
