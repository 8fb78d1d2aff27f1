/**
 * A script agent run by the workflow that asks for it, without a child workflow of its own: the same
 * scriptTurn activity (heartbeats, cancellation that waits for the process group to end, retries by
 * cause) and the same `max_attempts` loop as `agentWorkflow`'s static routing, and the same result. A
 * script agent has no model, no meter and no budget to pause on, so its child workflow bought nothing
 * but two workflow tasks, a start and a result delivery per phase.
 */
import { CancellationScope, isCancellation, proxySinks } from '@temporalio/workflow';
import { DEFAULT_AGENT_ATTEMPTS } from '../src/shared/failures';
import type { AgentResult } from '../src/shared/run';
import type { AgentTurnSinks } from '../src/shared/sinks';
import { ZERO_USAGE } from '../src/shared/run';
import type { AgentSpec } from '../src/shared/spec';
import {
  agentDone,
  logAttemptFailed,
  agentFileId,
  agentResult,
  type AgentWorkflowInput,
  failedOutcome,
  scriptOutcome,
  type TurnOutcome,
} from './agent';
import { isHostLost } from './host-lost';

/**
 * Patch id: a script agent with static routing runs as a scriptTurn activity of the run rather than as a
 * child `agentWorkflow`. Histories recorded before started the child.
 */
export const SCRIPT_AGENT_ACTIVITY_PATCH = 'script-agent-activity';

const { agentTurns } = proxySinks<AgentTurnSinks>();

/** Whether an agent can run without its own workflow: a script with static routing and a command. */
export function runsInline(agent: Pick<AgentSpec, 'backend' | 'routing' | 'command'>): boolean {
  return agent.backend === 'script' && (agent.routing ?? 'static') === 'static' && !!agent.command?.length;
}

/**
 * Runs a script agent to its result; a failed agent's result has `status: failed` (where the child
 * workflow ends failed with that result in its failure). `onAttempt` hears of each attempt as it starts.
 */
export async function runScriptAgent(
  input: AgentWorkflowInput,
  onAttempt: (attempt: number) => void = () => undefined,
): Promise<AgentResult> {
  const { agent } = input;
  const command = agent.command ?? [];
  const startedAt = new Date().toISOString();
  const fileId = agentFileId(input.phase, agent.id);
  const maxAttempts = agent.max_attempts ?? DEFAULT_AGENT_ATTEMPTS;
  // As agentWorkflow does: a cancellation (rollback, stopped run) tells the worker to let the running turn
  // heartbeat now, so it hears of it within a round trip. A hint, no command.
  CancellationScope.current().cancelRequested.catch(() => agentTurns.cancelRequested());
  for (let attempt = 1; ; attempt++) {
    onAttempt(attempt);
    let outcome: TurnOutcome;
    try {
      outcome = await scriptOutcome(input, command, fileId);
    } catch (err) {
      // A lost host is not the agent's failure: the run moves (workflows/project/hosts).
      if (isCancellation(err) || isHostLost(err)) throw err;
      outcome = failedOutcome(err);
    }
    if (agentDone(outcome, attempt, maxAttempts)) {
      // No model: nothing spent.
      const spent = { usage: { ...ZERO_USAGE }, costUsd: 0 };
      return agentResult(agent, outcome, spent, maxAttempts > 1 ? attempt : undefined, startedAt);
    }
    logAttemptFailed(agent.id, outcome, attempt, maxAttempts);
  }
}
