/**
 * `agentWorkflow` itself: the status query, the attempts loop (an agent's own failures count against
 * its `max_attempts`; infrastructure failures retry inside the activities), routing between the model
 * backend and the script, and the result. The backends' turns are in ./cli-turn, ./api-turn and
 * ./script-turn.
 */
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxySinks,
  setHandler,
} from '@temporalio/workflow';
import { round6 } from '../../src/shared/budget';
import { DEFAULT_AGENT_ATTEMPTS } from '../../src/shared/failures';
import { agentStatusQuery, type AgentWorkflowStatus } from '../../src/shared/messages';
import { addUsage, type AgentResult, type AgentStep, ZERO_USAGE } from '../../src/shared/run';
import type { AgentTurnSinks } from '../../src/shared/sinks';
import { agentAttributes, agentDetails } from '../../src/shared/visibility';
import { isHostLost } from '../host-lost';
import { Visibility } from '../visibility';
import { runApi } from './api-turn';
import { runCli, type CliProgress } from './cli-turn';
import { agentFileId, type AgentWorkflowInput } from './input';
import { agentMetering } from './metering';
import {
  AGENT_HONEST_OUTCOMES_PATCH,
  agentDone,
  logAttemptFailed,
  agentResult,
  agentFailedError,
  failedOutcome,
  type TurnOutcome,
} from './outcome';
import { scriptOutcome } from './script-turn';

const { agentTurns } = proxySinks<AgentTurnSinks>();

export async function agentWorkflow(input: AgentWorkflowInput): Promise<AgentResult> {
  const { agent } = input;
  const startedAt = new Date().toISOString();
  const status: AgentWorkflowStatus = {
    agentId: agent.id,
    role: agent.role,
    step: 'INITIALIZE',
    turns: 0,
    costUsd: 0,
  };
  setHandler(agentStatusQuery, () => status);
  // A cancellation (rollback, stopped run) reaches the running turn at its next heartbeat; this tells the
  // worker to make that heartbeat now (activities/turn-heartbeat). No command, no history: a hint.
  CancellationScope.current().cancelRequested.catch(() => agentTurns.cancelRequested());
  const visibility = new Visibility();
  await visibility.init(input.indexedAttributes);
  const show = (state: string) =>
    visibility.publish(
      agentAttributes({ runId: input.runId, phase: input.phase, role: agent.role }, state, status.costUsd),
      agentDetails(status),
    );
  show('running');
  const step = (s: AgentStep) => {
    status.step = s;
  };
  const fileId = agentFileId(input.phase, agent.id);
  const routing = agent.routing ?? (agent.backend === 'script' ? 'static' : 'ai');
  // Spend accumulates across attempts of every backend tried: money spent is spent.
  const spent = { usage: { ...ZERO_USAGE }, costUsd: 0 };
  const finish = (o: TurnOutcome, final: AgentStep): AgentResult => {
    step(final);
    show(o.ok ? 'completed' : 'failed');
    return agentResult(agent, o, spent, status.attempt, startedAt);
  };
  const account = (o: Pick<TurnOutcome, 'usage' | 'costUsd'>) => {
    spent.usage = addUsage(spent.usage, o.usage);
    spent.costUsd += o.costUsd;
    status.costUsd = round6(spent.costUsd);
  };
  const metering = agentMetering(input);

  // Histories recorded before agents had attempts of their own ran each agent once.
  const maxAttempts = patched('agent-attempts') ? (agent.max_attempts ?? DEFAULT_AGENT_ATTEMPTS) : 1;
  const cliProgress: CliProgress = { nextTurn: 0, previous: { cost: 0 } };
  for (let attempt = 1; ; attempt++) {
    if (maxAttempts > 1) status.attempt = attempt;
    let outcome: TurnOutcome;
    try {
      outcome = await attemptOnce(attempt);
    } catch (err) {
      if (isCancellation(err)) {
        step('CANCELLED');
        throw err;
      }
      // The run's host is gone: not the agent's failure; the run moves and starts the phase again.
      if (isHostLost(err)) throw err;
      outcome = failedOutcome(err);
    }
    if (agentDone(outcome, attempt, maxAttempts)) {
      const result = finish(outcome, outcome.ok ? 'COMPLETE' : 'FAILED');
      // Red in the Web UI, the classified failure as its cause; the phase reads the result from it.
      if (!outcome.ok && patched(AGENT_HONEST_OUTCOMES_PATCH)) throw agentFailedError(result);
      return result;
    }
    logAttemptFailed(agent.id, outcome, attempt, maxAttempts);
  }

  /** One attempt of the agent: its backend (and the script fallback of `hybrid`). */
  async function attemptOnce(attempt: number): Promise<TurnOutcome> {
    let outcome: TurnOutcome | undefined;
    if (routing === 'ai' || routing === 'hybrid') {
      if (agent.backend === 'script') {
        throw ApplicationFailure.nonRetryable(
          `agent "${agent.id}": routing "${routing}" needs backend cli or api`,
          'InvalidAgent',
        );
      }
      outcome =
        agent.backend === 'cli'
          ? await runCli(input, fileId, step, status, account, cliProgress, attempt, metering)
          : await runApi(input, fileId, step, status, account, metering);
    }
    if (routing === 'static' || (routing === 'hybrid' && !outcome?.ok)) {
      if (!agent.command) {
        if (outcome) return outcome;
        throw ApplicationFailure.nonRetryable(`agent "${agent.id}" has no script command`, 'InvalidAgent');
      }
      step('ACT');
      const fallbackNote = outcome
        ? `model backend failed (${outcome.error ?? 'unknown'}); script fallback `
        : '';
      outcome = await scriptOutcome(input, agent.command, fileId, fallbackNote);
      status.turns += 1;
      step('SUMMARIZE');
    }
    if (!outcome)
      throw ApplicationFailure.nonRetryable(`agent "${agent.id}": nothing to run`, 'InvalidAgent');
    return outcome;
  }
}
