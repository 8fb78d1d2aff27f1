/**
 * The cli backend: PLAN, ACT and SUMMARIZE as three turns of one `claude` session, resumed turn after
 * turn, across the agent's attempts and across worker crashes.
 */
import { isCancellation, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { AgentWorkflowStatus } from '../../src/shared/messages';
import { type AgentResult, type AgentStep, ZERO_USAGE } from '../../src/shared/run';
import { isHostLost } from '../host-lost';
import type { AgentWorkflowInput } from './input';
import type { Account, Metering } from './metering';
import { describe, failureSummary, failureType, toUsage, type TurnOutcome } from './outcome';
import { BUDGET_RESUME_NOTE, systemPrompt, taskPrompt } from './prompts';
import { model } from './proxies';

/** Where a cli agent is in its three turns, kept across the agent's attempts. */
export interface CliProgress {
  nextTurn: number;
  previous: {
    cost: number;
    usage?: { inputTokens: number; outputTokens: number; cacheRead: number; cacheCreation: number };
  };
}

/** cli backend: PLAN, ACT and SUMMARIZE are three turns of one `claude` session. */
export async function runCli(
  input: AgentWorkflowInput,
  fileId: string,
  step: (s: AgentStep) => void,
  status: AgentWorkflowStatus,
  account: Account,
  progress: CliProgress,
  attempt: number,
  metering: Metering,
): Promise<TurnOutcome> {
  const { agent } = input;
  // The run id is a UUID unique to this execution: a re-run after a rollback (same workflow id, new run)
  // gets a new session, while activity retries, agent attempts and replays keep this one.
  const sessionId = workflowInfo().runId;
  status.sessionId = sessionId;
  const turns: { step: AgentStep; prompt: string }[] = [
    { step: 'PLAN', prompt: `${taskPrompt(input)}\n\nFirst write a short plan of the steps you will take.` },
    { step: 'ACT', prompt: 'Carry out the plan now: make the changes in the working directory.' },
    { step: 'SUMMARIZE', prompt: 'Summarize in at most five lines what you changed and what is left.' },
  ];
  let last: Awaited<ReturnType<Activities['claudeTurn']>> | undefined;
  // A later attempt resumes the session at the turn that failed; earlier turns' work is in the session.
  for (const [i, turn] of turns.entries()) {
    if (i < progress.nextTurn) continue;
    step(turn.step);
    // After a budget refusal the same turn runs again in the same session once limits are raised.
    let resumed = false;
    for (;;) {
      const previous = progress.previous;
      try {
        last = await model(input.host, input.turnHeartbeatTimeoutS).claudeTurn({
          runId: input.runId,
          agentId: fileId,
          ...(input.outputsDir ? { outputsDir: input.outputsDir } : {}),
          sessionId,
          resume: i > 0 || attempt > 1 || resumed,
          ...(attempt > 1 ? { agentAttempt: attempt } : {}),
          ...(agent.timeout_s !== undefined ? { timeoutS: agent.timeout_s } : {}),
          ...(agent.hang_after_s !== undefined ? { hangAfterS: agent.hang_after_s } : {}),
          prompt: resumed ? BUDGET_RESUME_NOTE + turn.prompt : turn.prompt,
          cwd: input.workspace,
          model: agent.model,
          maxTurns: agent.max_turns,
          // Metered agents are held to their limits per request by the gateway, not by the CLI's own sum.
          ...(input.meter ? {} : { maxBudgetUsd: input.maxBudgetUsd }),
          appendSystemPrompt: systemPrompt(input),
          allowedTools: agent.allowed_tools,
          disallowedTools: agent.disallowed_tools,
          permissionMode: agent.permission_mode ?? 'acceptEdits',
          agents: agent.subagents,
          extraEnv: { ...input.env, ...agent.env },
          previousSessionCostUsd: previous.cost,
          previousSessionUsage: previous.usage,
          ...(metering.meter() ? { meter: metering.meter() } : {}),
        });
        break;
      } catch (err) {
        // A failed turn still cost money: its summary rides in the failure's details.
        const summary = failureSummary(err);
        if (summary) {
          account({ usage: toUsage(summary.usage), costUsd: summary.costUsd ?? 0 });
          // The session's totals moved on: the next attempt's cost is a delta from here.
          if (summary.totalCostUsd !== undefined)
            progress.previous = { cost: summary.totalCostUsd, usage: summary.sessionUsage ?? previous.usage };
        }
        if (isCancellation(err) || isHostLost(err)) throw err;
        if (await metering.waitForRaise(err)) {
          resumed = true;
          continue;
        }
        return {
          ok: false,
          summary: '',
          usage: ZERO_USAGE,
          costUsd: 0,
          sessionId,
          error: describe(err),
          errorType: failureType(err),
          outputRef: summary?.transcriptPath,
        };
      }
    }
    account({ usage: toUsage(last.usage), costUsd: last.costUsd });
    status.turns += last.numTurns;
    status.lastTool = last.lastTool ?? status.lastTool;
    progress.previous = { cost: last.totalCostUsd, usage: last.sessionUsage };
    progress.nextTurn = i + 1;
    if (!last.ok) {
      return {
        ok: false,
        summary: last.resultText,
        usage: ZERO_USAGE,
        costUsd: 0,
        sessionId,
        outputRef: last.transcriptPath,
        error: `${last.subtype}: ${last.resultText.slice(0, 300)}`,
        errorType: 'CliError',
      };
    }
  }
  const models: NonNullable<AgentResult['models']> = {};
  for (const [name, m] of Object.entries(last?.modelUsage ?? {})) {
    models[name] = {
      usage: {
        input_tokens: m.inputTokens ?? 0,
        output_tokens: m.outputTokens ?? 0,
        cache_read_input_tokens: m.cacheReadInputTokens ?? 0,
        cache_creation_input_tokens: m.cacheCreationInputTokens ?? 0,
      },
      costUsd: m.costUSD ?? 0,
    };
  }
  return {
    ok: true,
    summary: last?.resultText ?? '',
    usage: ZERO_USAGE,
    costUsd: 0,
    models,
    sessionId,
    outputRef: last?.transcriptPath,
  };
}
