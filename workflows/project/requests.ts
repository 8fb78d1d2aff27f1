/**
 * Validators of the requests a run takes (update `rollback`/signal `rollback`, `raiseBudget`, `approve`):
 * pure functions of the request and the run's view, so that an update is refused before it is accepted
 * and the same rules are tested without a server. Each throws an Error whose message names the problem.
 */
import {
  type ApproveRequest,
  ApproveRequestSchema,
  type BudgetRaiseRequest,
  BudgetRaiseRequestSchema,
  phaseAgentIds,
  type RollbackRequest,
  RollbackRequestSchema,
} from '../../src/shared/messages';
import type { Checkpoint, RunState } from '../../src/shared/run';
import type { PhaseSpec } from '../../src/shared/spec';
import { issuesOf } from './run';

/** What the validators read of a run. */
export interface RequestView {
  runId: string;
  state: RunState;
  /** True once the run has completed, failed or been cancelled. */
  over: boolean;
}

/** A rollback to a live checkpoint of a run that has not ended. */
export function checkRollback(
  req: unknown,
  run: RequestView & { checkpoints: readonly Pick<Checkpoint, 'id' | 'rolledBack'>[] },
): RollbackRequest {
  const parsed = RollbackRequestSchema.safeParse(req);
  if (!parsed.success) throw new Error(`invalid rollback request: ${issuesOf(parsed.error.issues)}`);
  if (run.over) throw new Error(`run ${run.runId} has ${run.state}; fork it instead`);
  const live = run.checkpoints.filter((c) => !c.rolledBack);
  if (!live.some((c) => c.id === parsed.data.checkpoint)) {
    const known = live.map((c) => c.id);
    throw new Error(
      `unknown checkpoint "${parsed.data.checkpoint}"; available: ${known.length ? known.join(', ') : 'none yet'}`,
    );
  }
  return parsed.data;
}

/** A budget raise at a scope that exists in the intake, on a run that has not ended. */
export function checkRaise(
  req: unknown,
  run: RequestView & { phases: readonly Pick<PhaseSpec, 'name' | 'agents'>[] },
): BudgetRaiseRequest {
  const parsed = BudgetRaiseRequestSchema.safeParse(req);
  if (!parsed.success) throw new Error(`invalid raiseBudget request: ${issuesOf(parsed.error.issues)}`);
  if (run.over) throw new Error(`run ${run.runId} has ${run.state}; its budget can no longer change`);
  const { scope } = parsed.data;
  if (scope.phase !== undefined) {
    const phase = run.phases.find((p) => p.name === scope.phase);
    if (!phase) {
      throw new Error(
        `run ${run.runId} has no phase "${scope.phase}"; phases: ${run.phases.map((p) => p.name).join(', ')}`,
      );
    }
    const ids = phaseAgentIds(phase);
    if (scope.level === 'agent' && !ids.includes(scope.agent ?? '')) {
      throw new Error(`phase "${phase.name}" has no agent "${scope.agent}"; agents: ${ids.join(', ')}`);
    }
  }
  return parsed.data;
}

/** An approval, while a phase waits for one and none was given yet. `state` is the state status shows. */
export function checkApprove(
  req: unknown,
  run: { runId: string; state: RunState; awaiting: { decision?: unknown } | undefined },
): ApproveRequest {
  const parsed = ApproveRequestSchema.safeParse(req);
  if (!parsed.success) throw new Error(`invalid approve request: ${issuesOf(parsed.error.issues)}`);
  if (!run.awaiting || run.awaiting.decision) {
    throw new Error(`run ${run.runId} is not waiting for an approval (state: ${run.state})`);
  }
  return parsed.data;
}
