/**
 * One agent of a phase, as a child `agentWorkflow` (a script agent as an activity of the run instead:
 * ../script-agent): reserve in the ledger (or stop on an exhausted budget), start the child, charge what
 * it spent (from its meter, or from what it reported), and start it again after a budget raise when it
 * stopped for want of budget.
 */
import { ChildWorkflowFailure, executeChild, isCancellation, patched } from '@temporalio/workflow';
import { describeExceeded, limitsFor, remaining, reserve } from '../../src/shared/budget';
import type { AgentResult, AgentStatusRow, PhaseResult } from '../../src/shared/run';
import { ZERO_USAGE } from '../../src/shared/run';
import { skillRef } from '../../src/shared/skills';
import type { AgentSpec, PhaseSpec } from '../../src/shared/spec';
import {
  agentFileId,
  agentWorkflow,
  agentWorkflowId,
  failedAgentResult,
  type AgentWorkflowInput,
} from '../agent';
import { runScriptAgent, runsInline, SCRIPT_AGENT_ACTIVITY_PATCH } from '../script-agent';
import { isHostLost } from '../host-lost';
import { budgetFailure, budgetStop, settle, settleMetered } from './budget';
import { nextAttempt } from './carry-runs';
import { countSpawn } from './metrics';
import type { ProjectRun } from './run';
import { failedAgent, reportedSpend, type Spend } from './spend';

/** Patch id: agents spend through metered turns and are charged from their meters (issue #9). */
export const METERED_PATCH = 'metered-charge';

/**
 * Patch id: a script agent is not metered. Its process gets no model gateway (activities/script), so its
 * meter stays empty and reading it was a round trip per agent for nothing. Histories recorded before read
 * it.
 */
export const SCRIPT_UNMETERED_PATCH = 'script-agents-unmetered';

/** Whether an agent start is metered: model agents are, script agents not (older histories: all). */
export function isMetered(
  backend: AgentSpec['backend'],
  patchedMetered: boolean,
  scriptUnmetered: () => boolean,
): boolean {
  return patchedMetered && !(backend === 'script' && scriptUnmetered());
}

/** A phase attempt, as its agents see it. */
export interface PhaseAttempt {
  phase: PhaseSpec;
  agents: (AgentSpec & { id: string })[];
  /** Earlier phases' summaries for the agents' prompts (src/shared/handoff); absent when none. */
  handoff?: string;
  /** On a retry after failed gates: which gates failed and their output. */
  retryNote?: string;
  result: PhaseResult;
  /** Attempts that ran out of budget and were run again after `raiseBudget`: kept for the record. */
  superseded: AgentResult[];
  /** Adds an agent's spend to the phase result. */
  account: (spend: Spend) => void;
}

/** The fresh reservation key of a child start: a re-run after a rollback or a raise is a new charge. */
export function reservationKey(
  workflowId: string,
  attempts: Record<string, number>,
  dropped: { floor?: number; droppedBelow?: number; phaseIndex?: number } = {},
): { key: string; n: number } {
  // A carry may have dropped the counters of finished phases (./carry-runs): a phase visited again
  // numbers after every dropped one.
  const n = nextAttempt(
    { attempts, floor: dropped.floor ?? 0, droppedBelow: dropped.droppedBelow ?? 0 },
    workflowId,
    dropped.phaseIndex ?? 0,
  );
  return { key: `${workflowId}#${n}`, n };
}

/** Runs agent `i` of the phase attempt to its result (retrying after budget stops); see the module doc. */
export async function runAgent(
  run: ProjectRun,
  at: PhaseAttempt,
  i: number,
  passedOutput: string | undefined,
): Promise<AgentResult> {
  const { runId, input, spec } = run;
  const { phase } = at;
  const agent = at.agents[i]!;
  const where = { phase: phase.name, agent: agent.id };
  const workflowId = agentWorkflowId(runId, phase.name, agent.id);
  const row: AgentStatusRow = {
    id: agent.id,
    role: agent.role,
    phase: phase.name,
    workflowId,
    state: 'pending',
    ...(agent.applied_skills?.length ? { skills: agent.applied_skills.map(skillRef) } : {}),
  };
  run.agentRows.set(workflowId, row);
  for (;;) {
    const { key, n } = reservationKey(workflowId, run.st.agentAttempts, {
      floor: run.st.attemptFloor,
      droppedBelow: run.st.attemptsDroppedBelow,
      phaseIndex: at.result.index,
    });
    // Agents report their cost only at the end, so nothing is held up front: the reservation marks
    // the agent in flight and is refused when a level has nothing left.
    const reserved = reserve(run.st.ledger, { key, ...where, estimateUsd: 0, estimateTokens: 0 });
    if (!reserved.ok) {
      const reason = describeExceeded(reserved.exceeded);
      row.state = 'pending';
      row.error = reason;
      run.audit.record('spawn_refused', { ...where, workflowId, reason });
      run.audit.record('budget', { event: 'reserve_refused', key, ...where, exceeded: reserved.exceeded });
      await budgetStop(run, reason, reserved.exceeded, where);
      continue;
    }
    run.st.ledger = reserved.ledger;
    run.st.agentAttempts[workflowId] = n;
    const left = remaining(run.st.ledger, phase.name, agent.id, key);
    const metered = isMetered(agent.backend, patched(METERED_PATCH), () => patched(SCRIPT_UNMETERED_PATCH));
    const meterId = `${agentFileId(phase.name, agent.id)}-${n}`;
    if (metered) run.runningMeters.set(workflowId, { key, meterId, ...where });
    row.state = 'running';
    row.error = undefined;
    run.publish();
    run.audit.record('spawn', {
      ...where,
      role: agent.role,
      backend: agent.backend,
      workflowId,
      attempt: n,
      reservation: key,
      ...(left.usd !== undefined ? { maxBudgetUsd: left.usd } : {}),
      ...(left.tokens !== undefined ? { remainingTokens: left.tokens } : {}),
      // The skills whose methodology this agent's prompt carries, and why each applies.
      ...(agent.applied_skills?.length
        ? { skills: agent.applied_skills.map((s) => ({ skill: skillRef(s), because: s.because })) }
        : {}),
    });
    const childInput: AgentWorkflowInput = {
      runId,
      phase: phase.name,
      agent,
      workspace: input.workspace,
      phasePrompt: phase.prompt,
      projectName: spec.project.name,
      requirements: spec.requirements,
      passedOutput,
      ...(at.handoff ? { handoff: at.handoff } : {}),
      ...(at.retryNote ? { retryNote: at.retryNote } : {}),
      env: {
        ORCHESTRATOR_RUN_ID: runId,
        ORCHESTRATOR_AGENT_ID: workflowId,
        ORCHESTRATOR_PHASE: phase.name,
        ORCHESTRATOR_WORKSPACE: input.workspace,
      },
      ...(left.usd !== undefined ? { maxBudgetUsd: left.usd } : {}),
      ...(metered
        ? {
            meter: { id: meterId, limits: limitsFor(run.st.ledger, phase.name, agent.id) },
            onBudgetExceeded: run.onExceeded,
          }
        : {}),
      outputsDir: input.outputsDir,
      ...(spec.constraints.agent_heartbeat_timeout_s !== undefined
        ? { turnHeartbeatTimeoutS: spec.constraints.agent_heartbeat_timeout_s }
        : {}),
      ...(run.visibility.indexedNames() ? { indexedAttributes: run.visibility.indexedNames() } : {}),
      // The agent works in the workspace: its turns go to the run's host (./hosts).
      ...(run.st.host ? { host: { queue: run.st.host.queue, moveAfterMs: run.st.host.moveAfterMs } } : {}),
    };
    let r: AgentResult;
    try {
      countSpawn(runId, phase.name, agent.id);
      r =
        runsInline(agent) && patched(SCRIPT_AGENT_ACTIVITY_PATCH)
          ? await runScriptAgent(childInput, (attempt) => {
              if (attempt > 1) row.attempt = attempt;
            })
          : await executeChild(agentWorkflow, {
              workflowId,
              args: [childInput],
              staticSummary: `${agent.role} (${agent.backend}) in phase ${phase.name} of ${run.runId}`,
            });
      for (const t of r.refusedTools ?? []) {
        run.audit.record('tool_refused', { ...where, tool: t.tool, turn: t.turn }, workflowId);
      }
      row.state = r.status === 'completed' ? 'completed' : 'failed';
      row.costUsd = r.costUsd;
      row.error = r.error;
      row.errorType = r.errorType;
    } catch (err) {
      const reported = reportedSpend(err);
      // A lost host ends the agent as a cancellation does: charged what it was served, and the run moves.
      if (isCancellation(err) || isHostLost(err)) {
        if (metered) {
          // Cancelled, rolled back or the run stopped: charged exactly what the agent was served.
          at.account(await settleMetered(run, key, workflowId, where, meterId));
        } else {
          settle(run, key, phase.name, agent, reported ?? { usage: ZERO_USAGE, costUsd: 0 });
          if (reported) at.account(reported);
        }
        row.state = 'cancelled';
        throw err;
      }
      row.state = 'failed';
      // A failed agent's workflow carries its whole result (workflows/agent/outcome agentFailedError).
      const carried = failedAgentResult(err);
      row.error =
        carried?.error ??
        (err instanceof ChildWorkflowFailure ? (err.cause?.message ?? err.message) : String(err));
      r = carried ?? failedAgent(agent.id, agent.role, agent.backend, row.error, reported);
      row.errorType = r.errorType;
    }
    if (metered) {
      const spend = await settleMetered(run, key, workflowId, where, meterId);
      r = { ...r, usage: spend.usage, costUsd: spend.costUsd, models: spend.models };
      row.costUsd = r.costUsd;
    } else {
      settle(run, key, phase.name, agent, r);
    }
    at.account(r);
    if (r.status !== 'completed') {
      const stop = budgetFailure(run, where, r);
      if (stop) {
        at.superseded.push(r);
        row.state = 'pending';
        row.error = stop.reason;
        await budgetStop(run, stop.reason, stop.exceeded, where);
        continue;
      }
    }
    return r;
  }
}
