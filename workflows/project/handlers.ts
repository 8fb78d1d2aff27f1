/**
 * The run's signal, query and update handlers (all defined in src/shared/messages). They validate with
 * the pure checks of ./requests, change the run's state, and leave every waiting to the main loop.
 */
import { condition, getExternalWorkflowHandle, log, setHandler } from '@temporalio/workflow';
import { cutText } from '../../src/shared/audit';
import { getLimit, limitsFor, report as ledgerReport, setLimit } from '../../src/shared/budget';
import { OPERATOR } from '../../src/shared/identity';
import {
  agentBudgetLimitsSignal,
  AgentBudgetPausedSchema,
  agentBudgetPausedSignal,
  approveUpdate,
  auditHeadQuery,
  auditQuery,
  budgetQuery,
  checkpointsQuery,
  phaseResultsQuery,
  raiseBudgetUpdate,
  type RollbackRequest,
  rollbackSignal,
  rollbackUpdate,
  type RollbackResult,
  statusQuery,
} from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { handleMeterLimits } from '../meter-limits';
import { signalInput } from '../signal-input';
import { countBudgetPause } from './metrics';
import { meter } from './proxies';
import { chargeMeter, pausedScope, raiseCommand } from './budget';
import { checkApprove, checkRaise, checkRollback } from './requests';
import type { ProjectRun } from './run';

/** How many refused rollback signals status keeps. */
const REFUSALS_KEPT = 20;

/** Registers every handler of the run. */
export function setProjectHandlers(run: ProjectRun): void {
  const { runId, st, audit } = run;
  const validRollback = (req: unknown): RollbackRequest =>
    checkRollback(req, {
      runId,
      state: run.state,
      over: run.isOver(),
      checkpoints: run.rollbackTargets(),
    });
  const validRaise = (req: unknown) =>
    checkRaise(req, { runId, state: run.state, over: run.isOver(), phases: run.phases });
  const validApprove = (req: unknown) =>
    checkApprove(req, { runId, state: run.effectiveState(), awaiting: run.awaitingApproval });
  const requestRollback = (req: RollbackRequest, source: string) => {
    run.pendingRollback = { ...req, source };
    run.phaseScope?.cancel();
  };

  setHandler(rollbackSignal, (req) => {
    try {
      requestRollback(validRollback(req), 'signal');
    } catch (err) {
      // A signal cannot be refused to its sender, so the refusal is recorded where status shows it.
      const reason = (err as Error).message;
      // Kept short: a sender may flood the run with refused signals.
      run.rejected.push({ at: new Date().toISOString(), reason: cutText(reason, 500) });
      if (run.rejected.length > REFUSALS_KEPT) run.rejected.splice(0, run.rejected.length - REFUSALS_KEPT);
      // The request goes to the audit as it came (cut to the entry bound), whatever its shape or size.
      audit.record('rollback', { event: 'refused', reason, request: req }, OPERATOR);
      // A flood of bad signals must not flood the log (the audit has every one): the first few, then 1 in 100.
      run.refusedSignals += 1;
      if (run.refusedSignals <= 5 || run.refusedSignals % 100 === 0) {
        log.warn('rollback signal refused', {
          runId,
          reason: cutText(reason, 300),
          refused: run.refusedSignals,
        });
      }
    }
  });
  setHandler(
    rollbackUpdate,
    async (req): Promise<RollbackResult> => {
      const valid = validRollback(req);
      const target = run.rollbackRequestsServed + 1;
      requestRollback(valid, 'update');
      await condition(() => run.rollbackRequestsServed >= target);
      const cp =
        run.liveCheckpoint(valid.checkpoint) ?? st.checkpoints.find((c) => c.id === valid.checkpoint);
      return {
        checkpoint: valid.checkpoint,
        resumesAt: cp ? run.phases[cp.phaseIndex + 1]?.name : undefined,
      };
    },
    { validator: (req) => void validRollback(req) },
  );
  setHandler(
    raiseBudgetUpdate,
    (req) => {
      const valid = validRaise(req);
      const previous = getLimit(st.ledger, valid.scope);
      st.ledger = setLimit(st.ledger, valid.scope, { usd: valid.usd, tokens: valid.tokens });
      const wasPaused = [...run.pauses.keys()].some((k) => k.startsWith('budget '));
      run.budgetVersion += 1;
      const limit = getLimit(st.ledger, valid.scope);
      audit.record(
        'budget',
        { event: 'raise', scope: valid.scope, previous, limit, wasPaused },
        valid.actor ?? OPERATOR,
      );
      log.info('budget changed', { runId, scope: valid.scope, limit });
      // Running metered agents get the new limits; those paused by a refusal resume in their own session.
      for (const [workflowId, m] of run.runningMeters) {
        if (run.budgetPausedAgents.delete(workflowId)) {
          run.pauses.delete(`budget ${m.phase}/${m.agent}`);
          audit.record('budget', { event: 'resume', phase: m.phase, agent: m.agent });
        }
        getExternalWorkflowHandle(workflowId)
          .signal(agentBudgetLimitsSignal, limitsFor(st.ledger, m.phase, m.agent))
          .catch((err: unknown) =>
            log.warn('could not send limits to agent', { workflowId, err: String(err) }),
          );
      }
      return { scope: valid.scope, limit, wasPaused };
    },
    { validator: (req) => void validRaise(req) },
  );
  setHandler(
    approveUpdate,
    (req) => {
      const valid = validApprove(req);
      const waiting = run.awaitingApproval!;
      waiting.decision = { note: valid.note, approver: valid.approver };
      audit.record(
        'approval',
        { event: 'approved', phase: waiting.phase, gates: waiting.gates, note: valid.note },
        valid.approver ?? OPERATOR,
      );
      return { phase: waiting.phase, gates: waiting.gates };
    },
    { validator: (req) => void validApprove(req) },
  );
  setHandler(agentBudgetPausedSignal, async (raw) => {
    const p = signalInput('agentBudgetPaused', AgentBudgetPausedSchema, raw, { runId });
    const m = p ? run.runningMeters.get(p.workflowId) : undefined;
    if (!p || !m) return;
    const scope = pausedScope(p);
    // What the agent spent so far goes into the ledger first, so the paused run shows it.
    const seen = run.budgetVersion;
    chargeMeter(run, m.key, m, await meter.readMeter({ runId, meterId: m.meterId }));
    // Ended meanwhile, or a raise already sent new limits: nothing waits any more.
    if (!run.runningMeters.has(p.workflowId) || run.budgetVersion !== seen) return;
    run.budgetPausedAgents.add(p.workflowId);
    countBudgetPause(runId, m.phase, m.agent);
    run.pauses.set(
      `budget ${m.phase}/${m.agent}`,
      `${p.reason}; raise it with: ${raiseCommand(runId, scope, p.unit)}`,
    );
    audit.record('budget', { event: 'pause', reason: p.reason, phase: m.phase, agent: m.agent, scope });
    log.warn('paused: budget exhausted', { runId, phase: m.phase, agent: m.agent, reason: p.reason });
  });
  setHandler(checkpointsQuery, () => st.checkpoints);
  setHandler(phaseResultsQuery, () => st.phaseResults);
  setHandler(statusQuery, (): RunStatus => run.status());
  setHandler(auditQuery, (req) => audit.page(req).entries);
  setHandler(auditHeadQuery, () => audit.head());
  handleMeterLimits(() => st.ledger);
  setHandler(budgetQuery, () => ({
    runId,
    state: run.effectiveState(),
    pausedReason: run.pausedReason(),
    onExceeded: run.onExceeded,
    report: ledgerReport(st.ledger),
    ledger: st.ledger,
  }));
}
