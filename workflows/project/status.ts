/**
 * What a run shows of itself (queries `status` and `budget`, the summary it returns): pure functions of
 * the run's state, so that they are tested without a server.
 */
import {
  addUsage,
  PHASE_ERRORS_SHOWN,
  type RunState,
  type RunStatus,
  type PhaseResult,
  totalTokens,
} from '../../src/shared/run';
import type { CarriedState } from './carry';
import { formatDuration } from '../../src/shared/duration';
import { round6 } from '../../src/shared/budget';

/** `paused` while anything waits (a budget, an approval) in a running run; otherwise the state itself. */
export function effectiveState(state: RunState, pauses: number): RunState {
  return pauses > 0 && state === 'running' ? 'paused' : state;
}

/** Why the run waits (every waiter), or else the last refused request, or nothing. */
export function pausedReason(
  pauses: Iterable<string>,
  rejected: readonly { reason: string }[],
): string | undefined {
  const why = [...pauses];
  if (why.length > 0) return why.join('; ');
  return rejected.length ? `last refused request: ${rejected[rejected.length - 1]?.reason}` : undefined;
}

/**
 * Usage and cost of every attempt: rolled-back work still cost money. Earlier executions' attempts are
 * summed in `spent`; their carried rows hold no usage.
 */
export function runTotals(st: Pick<CarriedState, 'spent' | 'phaseResults'>): RunStatus['totals'] {
  let usage = { ...st.spent.usage };
  let costUsd = st.spent.costUsd;
  for (const r of st.phaseResults) {
    usage = addUsage(usage, r.usage);
    costUsd += r.costUsd;
  }
  return { usage, costUsd: round6(costUsd), tokens: totalTokens(usage) };
}

/**
 * One row per phase of the intake, from its latest attempt; a phase rolled back and not reached again
 * shows as `pending`.
 */
export function phaseRows(
  phases: readonly { name: string }[],
  st: Pick<CarriedState, 'phaseResults' | 'nextPhase'>,
): RunStatus['phases'] {
  return phases.map((p, i) => {
    const latest = [...st.phaseResults].reverse().find((r) => r.index === i);
    const status = latest
      ? latest.status === 'rolled_back' && i >= st.nextPhase
        ? 'pending'
        : latest.status
      : 'pending';
    const errors = status === 'failed' ? latest?.errors.slice(0, PHASE_ERRORS_SHOWN) : undefined;
    return {
      name: p.name,
      status,
      attempt: latest?.attempt ?? 0,
      checkpoint: latest?.checkpoint,
      ...(errors?.length ? { errors } : {}),
    };
  });
}

/**
 * The warning a run past its deadline shows (and logs once): how late the phases that ended after it
 * were, or how long a run still going has overrun. Undefined when on time or without a deadline.
 */
export function deadlineWarning(
  deadline: string | undefined,
  phaseResults: readonly Pick<PhaseResult, 'phase' | 'status' | 'completedAt'>[],
  over: boolean,
  now: number,
): { text: string; late: number; overrunning: boolean } | undefined {
  const due = deadline === undefined ? NaN : Date.parse(deadline);
  if (Number.isNaN(due)) return undefined;
  const late = phaseResults.filter(
    (r) =>
      (r.status === 'completed' || r.status === 'failed') &&
      r.completedAt !== undefined &&
      Date.parse(r.completedAt) > due,
  );
  const parts: string[] = [];
  if (late.length > 0) {
    const first = late[0]!;
    const by = formatDuration(Date.parse(first.completedAt!) - due);
    parts.push(
      late.length === 1
        ? `phase "${first.phase}" ended ${by} after it`
        : `${late.length} phase attempts ended after it, the first ("${first.phase}") ${by} late`,
    );
  }
  const overrunning = !over && now > due;
  if (overrunning) parts.push(`the run is still going, ${formatDuration(now - due)} past it`);
  return parts.length
    ? { text: `past the deadline ${deadline}: ${parts.join('; ')}`, late: late.length, overrunning }
    : undefined;
}
