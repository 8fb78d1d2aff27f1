/**
 * One round of a team agent: a script run, or a `claude` turn in the agent's session (the first opens
 * it, later ones resume it). A budget refusal pauses the agent in place: the team is told, and the same
 * round runs again in the same session once new limits arrive. A failed or cancelled turn still reports
 * what it cost.
 */
import { condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { FailureType } from '../../src/shared/failures';
import { agentBudgetPausedSignal } from '../../src/shared/messages';
import { BUDGET_RESUME_NOTE } from '../agent';
import type { TeamAgentRun } from './agent-run';
import {
  budgetRefusal,
  cliResultType,
  describe,
  failureSummary,
  failureType,
  type SessionUsage,
} from './failures';
import { continuePrompt, firstPrompt, withMessages } from './prompts';
import { model } from './proxies';

export interface TurnOutcome {
  ok: boolean;
  cancelled: boolean;
  costUsd: number;
  turns: number;
  error?: string;
  errorType?: FailureType;
  sessionCost?: number;
  sessionUsage?: SessionUsage;
}

/** The level and unit a budget refusal names, as the team's pause signal takes them. */
export function refusalScope(refusal: { level?: string; unit?: string } | undefined): {
  level: 'run' | 'phase' | 'agent';
  unit: 'usd' | 'tokens';
} {
  return {
    level: refusal?.level === 'run' || refusal?.level === 'phase' ? refusal.level : 'agent',
    unit: refusal?.unit === 'tokens' ? 'tokens' : 'usd',
  };
}

/**
 * A budget refused the agent's next model request: the team pauses and names the limit, and the agent
 * waits, its session intact, until the team sends new limits (true), or its turn is cancelled.
 */
async function budgetPause(a: TeamAgentRun, err: unknown): Promise<boolean> {
  const cause = budgetRefusal(err);
  if (!a.input.meter || !cause) return false;
  const refusal = failureSummary(err)?.budgetRefusal;
  const seen = a.limitsVersion;
  const { level, unit } = refusalScope(refusal);
  await a.team.signal(agentBudgetPausedSignal, {
    workflowId: workflowInfo().workflowId,
    phase: a.agent.role,
    agent: a.agent.id,
    reason: cause.message,
    level,
    unit,
  });
  await condition(() => a.limitsVersion > seen);
  return true;
}

/** Runs round `round` of the agent. */
export async function runTurn(a: TeamAgentRun, round: number): Promise<TurnOutcome> {
  const { input, agent, settings } = a;
  /** Spent by attempts of this round that a budget stopped. */
  let refusedCost = 0;
  try {
    if (input.backend === 'script') {
      const r = await a.onHost(() =>
        a.script.scriptTurn({
          runId: input.runId,
          agentId: agent.id,
          workspace: input.workspace,
          outputsDir: input.outputsDir,
          command: ['sh', '-c', input.instructions],
          env: a.env,
          timeoutS: settings.scriptTimeoutS,
          ...(input.capability ? { capabilityFile: input.capability.file } : {}),
        }),
      );
      return {
        ok: r.ok,
        cancelled: false,
        costUsd: 0,
        turns: 1,
        error: r.ok ? undefined : `script exited with code ${r.exitCode}: ${r.summary.slice(-300)}`,
        ...(r.ok ? {} : { errorType: 'AgentExited' as const }),
      };
    }
    // Messages that arrived while no turn ran open the next prompt.
    const unread = a.inbox.filter((m) => m.seq > a.deliveredSeq);
    const base = round === 1 ? firstPrompt(input.instructions, a.dir) : continuePrompt(a.tasks);
    const prompt = withMessages(unread, base);
    let afterSeq = unread.at(-1)?.seq ?? a.deliveredSeq;
    // After a budget refusal the same round runs again in the same session once limits are raised.
    let resumed = false;
    for (;;) {
      try {
        const turn = {
          runId: input.runId,
          agentId: agent.id,
          outputsDir: input.outputsDir,
          sessionId: a.sessionId!,
          resume: round > 1 || resumed,
          prompt: resumed ? BUDGET_RESUME_NOTE + prompt : prompt,
          team: { runId: input.runId, agentId: agent.id, afterSeq },
          cwd: input.workspace,
          model: input.model ?? settings.model,
          maxTurns: input.maxTurns ?? settings.maxTurns,
          maxBudgetUsd: settings.maxBudgetUsd,
          appendSystemPrompt: a.persona,
          allowedTools: settings.allowedTools,
          disallowedTools: settings.disallowedTools,
          permissionMode: settings.permissionMode,
          agents: input.subagents,
          extraEnv: a.env,
          ...(input.capability ? { capabilityFile: input.capability.file } : {}),
          previousSessionCostUsd: a.session.cost,
          previousSessionUsage: a.session.usage,
          // One meter per agent (the file the team reads), its role as the phase.
          ...(input.meter
            ? { meter: { id: agent.id, phase: agent.role, agent: agent.id, limits: a.limits } }
            : {}),
        };
        // A turn its host never took runs on the host the team moved to, resuming the same session.
        const r = await a.onHost(() => model(settings, a.host).claudeTurn(turn));
        a.session = { cost: r.totalCostUsd, usage: r.sessionUsage };
        a.deliveredSeq = Math.max(a.deliveredSeq, r.deliveredSeq ?? afterSeq);
        return {
          ok: r.ok,
          cancelled: false,
          costUsd: refusedCost + r.costUsd,
          turns: r.numTurns,
          error: r.ok ? undefined : `${r.subtype}: ${r.resultText.slice(0, 300)}`,
          ...(r.ok ? {} : { errorType: cliResultType(r.subtype) }),
        };
      } catch (err) {
        if (!input.meter || isCancellation(err)) throw err;
        const summary = failureSummary(err);
        if (!(await budgetPause(a, err))) throw err;
        refusedCost += summary?.costUsd ?? 0;
        if (summary?.totalCostUsd !== undefined)
          a.session = { cost: summary.totalCostUsd, usage: summary.sessionUsage ?? a.session.usage };
        // Messages the refused attempt delivered mid-turn are in the session: not sent again.
        afterSeq = Math.max(afterSeq, summary?.deliveredSeq ?? afterSeq);
        resumed = true;
      }
    }
  } catch (err) {
    // A failed or cancelled turn still cost money: its summary rides in the failure's details.
    const summary = failureSummary(err);
    return {
      ok: false,
      cancelled: isCancellation(err),
      costUsd: refusedCost + (summary?.costUsd ?? 0),
      turns: 0,
      error: describe(err),
      errorType: failureType(err),
    };
  } finally {
    a.turnRunning = false;
  }
}
