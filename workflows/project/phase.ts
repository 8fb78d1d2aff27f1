/**
 * One attempt of one phase: its agents by the phase's strategy, then its gates, then checkpoint CP<n>
 * (a shadow-git snapshot plus a validated manifest). Returns how the attempt ended for the main loop.
 */
import { patched } from '@temporalio/workflow';
import { phaseAgentIds } from '../../src/shared/messages';
import {
  addUsage,
  type AgentResult,
  type Checkpoint,
  type PhaseResult,
  ZERO_USAGE,
} from '../../src/shared/run';
import type { PhaseSpec } from '../../src/shared/spec';
import {
  handoffSection,
  handoffSources,
  phaseSummary,
  retryNote,
  summaryRelPath,
} from '../../src/shared/handoff';
import { agentWorkflowId } from '../agent';
import { runStrategy } from '../strategies';
import { takeCheckpoint } from './checkpoint';
import { type PhaseAttempt, runAgent } from './agents';
import { type GateOutcome, runGates } from './gates';
import type { ProjectRun } from './run';
import { round6 } from '../../src/shared/budget';

/**
 * Patch id: the run's pending audit entries ride along with the phase's checkpointPhase call, and a
 * completed phase no longer flushes them with an appendAudit call of its own (the next checkpoint, a
 * pause, continue-as-new or the run's end writes them). Histories recorded before made that call.
 */
export const CHECKPOINT_AUDIT_PATCH = 'checkpoint-carries-audit';

/** How a phase attempt ended, as far as the main loop must act on it (`failed`: `result.errors` says why). */
export type PhaseOutcome = { kind: 'completed' } | GateOutcome;

/** The attempt number of the next run of phase `index`: one more than any attempt recorded. */
export function nextAttempt(
  results: readonly Pick<PhaseResult, 'index' | 'attempt'>[],
  index: number,
): number {
  return Math.max(0, ...results.filter((r) => r.index === index).map((r) => r.attempt)) + 1;
}

/** A new phase result, `running`. */
export function newPhaseResult(
  phase: string,
  index: number,
  attempt: number,
  startedAt: string,
): PhaseResult {
  return {
    phase,
    index,
    attempt,
    status: 'running',
    startedAt,
    usage: { ...ZERO_USAGE },
    costUsd: 0,
    errors: [],
    agents: [],
  };
}

/**
 * Whether the phase needs a snapshot of its start: it has a `rollback` gate and no earlier live
 * checkpoint to roll back to.
 */
export function needsStartSnapshot(
  phase: Pick<PhaseSpec, 'gates'>,
  checkpoints: readonly Pick<Checkpoint, 'rolledBack' | 'phaseIndex'>[],
  index: number,
): boolean {
  const hasRollbackGate = phase.gates.some((g) => (g as { on_fail?: unknown }).on_fail === 'rollback');
  return hasRollbackGate && !checkpoints.some((c) => !c.rolledBack && c.phaseIndex < index);
}

/** `fallback` succeeds when any attempt succeeded; every other strategy needs all its agents. */
export function phaseSucceeded(
  strategy: PhaseSpec['strategy']['type'],
  results: readonly Pick<AgentResult, 'status'>[],
): boolean {
  return strategy === 'fallback'
    ? results.some((r) => r.status === 'completed')
    : results.every((r) => r.status === 'completed');
}

/**
 * Counts of a checkpoint's artifacts: the list is in the manifest. A result recorded before totals
 * existed carries the list.
 */
export function artifactTotals(cp: {
  totals?: { files: number; bytes: number };
  files?: { size: number }[];
}): { files: number; bytes: number } {
  const legacy = cp.files;
  return (
    cp.totals ?? {
      files: legacy?.length ?? 0,
      bytes: legacy?.reduce((n, f) => n + f.size, 0) ?? 0,
    }
  );
}

/** Runs one attempt of phase `index` into `result`; see the module doc. */
export async function runPhase(
  run: ProjectRun,
  index: number,
  phase: PhaseSpec,
  result: PhaseResult,
): Promise<PhaseOutcome> {
  const { runId, input } = run;
  const ids = phaseAgentIds(phase);
  // Context hand-off: earlier phases' summaries, and on a retry the gates that failed last time.
  const handoff = handoffSection(
    run.st.phaseResults,
    handoffSources(
      run.phases.map((p) => p.name),
      index,
      phase.summaries_from,
    ),
    (name) => `${input.outputsDir.replace(/\/+$/, '')}/${runId}/${summaryRelPath(name)}`,
  );
  const previous = run.st.phaseResults.find((r) => r.index === index && r.attempt === result.attempt - 1);
  const note = retryNote(previous);
  const at: PhaseAttempt = {
    phase,
    agents: phase.agents.map((a, i) => ({ ...a, id: ids[i]! })),
    ...(handoff ? { handoff } : {}),
    ...(note ? { retryNote: note } : {}),
    result,
    superseded: [],
    account: (r) => {
      result.usage = addUsage(result.usage, r.usage);
      result.costUsd = round6(result.costUsd + r.costUsd);
    },
  };
  const outcome = await runStrategy(
    at.agents.length,
    phase.strategy,
    (i, passed) => runAgent(run, at, i, passed),
    { ok: (r) => r.status === 'completed', output: (r) => r.summary },
  );
  for (const i of outcome.skipped) {
    const a = at.agents[i]!;
    run.agentRows.set(agentWorkflowId(runId, phase.name, a.id), {
      id: a.id,
      role: a.role,
      phase: phase.name,
      workflowId: agentWorkflowId(runId, phase.name, a.id),
      state: 'skipped',
    });
  }
  result.agents = [...at.superseded, ...outcome.results];
  if (!phaseSucceeded(phase.strategy.type, outcome.results)) {
    const failed = outcome.results.filter((r) => r.status !== 'completed');
    result.errors.push(...failed.map((r) => `agent ${r.agentId}: ${r.error ?? r.status}`));
    return { kind: 'failed' };
  }
  if (phase.gates.length > 0) {
    const verdict = await runGates(run, index, phase, result);
    if (verdict) return verdict;
  }
  const cpId = `CP${run.st.cpCounter + 1}`;
  const audit = patched(CHECKPOINT_AUDIT_PATCH) ? run.audit.ride() : [];
  const cp = await takeCheckpoint(run, {
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    runId,
    phase: phase.name,
    checkpoint: cpId,
    label: `post-${phase.name}`,
    artifacts: phase.artifacts,
    ...(audit.length > 0 ? { audit } : {}),
    // The phase's summary for later phases and readers: outputs/<run>/<phase>/summary.md.
    summary: phaseSummary(phase.name, result.attempt, outcome.results),
  });
  run.audit.written(audit);
  result.artifactTotals = artifactTotals(cp);
  if (!cp.ok || !cp.commit) {
    result.errors.push(...cp.errors);
    if (cp.errorCount !== undefined && cp.errorCount > cp.errors.length)
      result.errors.push(`… and ${cp.errorCount - cp.errors.length} more artifact error(s)`);
    return { kind: 'failed' };
  }
  run.st.cpCounter += 1;
  const checkpoint: Checkpoint = {
    id: cpId,
    label: `post-${phase.name}`,
    phase: phase.name,
    phaseIndex: index,
    commit: cp.commit,
    manifestPath: cp.manifestPath ?? '',
    ...(cp.manifestSha256 ? { manifestSha256: cp.manifestSha256 } : {}),
    createdAt: new Date().toISOString(),
    runId,
  };
  run.st.checkpoints.push(checkpoint);
  result.checkpoint = cpId;
  result.outputRef = cp.manifestPath;
  run.audit.record('checkpoint', {
    id: cpId,
    phase: phase.name,
    attempt: result.attempt,
    commit: cp.commit,
    manifest: cp.manifestPath,
    files: result.artifactTotals.files,
  });
  return { kind: 'completed' };
}
