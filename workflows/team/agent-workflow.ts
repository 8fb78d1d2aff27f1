/**
 * `teamAgentWorkflow`: one agent of a team. It prepares `<workspace>/.team/<id>/` (instructions.md,
 * tasks.md, session.json), runs its process (`claude` turns of one session, or a script; ./agent-turn)
 * until every task in tasks.md is completed or it reports done, ends the process, and archives the
 * directory as `<id>-completed/`. Its state is one TeamAgentRun (./agent-run), its handlers are in
 * ./agent-handlers.
 */
import { allHandlersFinished, CancellationScope, condition, log, patched } from '@temporalio/workflow';
import { renderPersona, teamAgentWorkflowId } from '../../src/shared/team';
import { setAgentHandlers } from './agent-handlers';
import { TeamAgentRun } from './agent-run';
import { runTurn } from './agent-turn';
import { agentFailure, describe } from './failures';
import { HONEST_OUTCOMES_PATCH, LONG_TEAMS_PATCH } from './patches';
import { round6 } from '../../src/shared/budget';
import type { TeamAgentInput, TeamAgentResult } from './types';
import { agentEndedSignal } from '../../src/shared/team';

export async function teamAgentWorkflow(input: TeamAgentInput): Promise<TeamAgentResult> {
  const a = new TeamAgentRun(input);
  const { agent, settings, status, dir, sessionId, startedAt } = a;
  setAgentHandlers(a);

  a.persona = renderPersona({
    runId: input.runId,
    goal: input.goal,
    workspace: input.workspace,
    agent,
    title: input.title,
    persona: input.persona,
    canRequest: input.canRequest,
    sessionId,
    backend: input.backend,
    startedAt,
  });
  a.prepareArgs = {
    runId: input.runId,
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    agent,
    workflowId: teamAgentWorkflowId(input.runId, agent.id),
    backend: input.backend,
    persona: a.persona,
    instructions: input.instructions,
    sessionId,
    startedAt,
  };
  const prepareArgs = a.prepareArgs;
  const prep = await a.onHost(() => a.files.prepareTeamAgent(prepareArgs));
  status.tasks = prep.tasks;
  status.state = 'running';
  a.env = {
    ...prep.env,
    ORCHESTRATOR_RUN_ID: input.runId,
    ORCHESTRATOR_AGENT_ID: agent.id,
    ORCHESTRATOR_WORKSPACE: input.workspace,
  };

  try {
    for (let round = 1; round <= settings.maxRounds && !a.complete() && a.stopReason === undefined; round++) {
      status.round = round;
      const scope = new CancellationScope();
      a.turnScope = scope;
      a.turnRunning = true;
      const turn = scope.run(() => runTurn(a, round));
      await condition(() => !a.turnRunning || a.complete() || a.stopReason !== undefined);
      // Done while the process still runs (it marked its last task): let it end its turn, then end it.
      if (a.turnRunning && a.stopReason === undefined) {
        await condition(
          () => !a.turnRunning || a.stopReason !== undefined,
          `${settings.completionGraceS} seconds`,
        );
      }
      if (a.turnRunning) scope.cancel();
      const outcome = await turn;
      a.turnScope = undefined;
      status.costUsd = round6(status.costUsd + outcome.costUsd);
      status.turns += outcome.turns;
      if (a.stopReason !== undefined) break;
      const read = await a.onHost(() => a.files.readTeamTasks({ dir }));
      a.tasks = read.tasks;
      status.tasks = read.counts;
      if (input.backend === 'script' && outcome.ok) a.reportedDone = true;
      a.report({ costUsd: status.costUsd, turns: status.turns, tasks: status.tasks });
      if (!outcome.ok && !outcome.cancelled) {
        a.error = outcome.error;
        a.errorType = outcome.errorType;
        break;
      }
    }
  } finally {
    a.finished = true;
  }

  const state: TeamAgentResult['state'] =
    a.stopReason !== undefined ? 'stopped' : a.complete() ? 'completed' : 'failed';
  if (state === 'failed' && !a.error) {
    a.error = `tasks not completed after ${settings.maxRounds} round(s): ${status.tasks.completed}/${status.tasks.total} done`;
    a.errorType = 'TasksNotCompleted';
  }
  status.state = state;
  const completedAt = new Date().toISOString();
  const { error, stopReason } = a;
  const { archivedTo } = await CancellationScope.nonCancellable(() =>
    a.onHost(() =>
      a.files.archiveTeamAgent({
        dir,
        outcome: state,
        session: { completedAt, costUsd: status.costUsd, turns: status.turns, error, stopReason },
      }),
    ),
  );
  await Promise.all(a.reports);
  await condition(allHandlersFinished);
  const result: TeamAgentResult = {
    agentId: agent.id,
    state,
    costUsd: status.costUsd,
    turns: status.turns,
    tasks: status.tasks,
    archivedTo,
    sessionId,
    error: a.error,
    ...(state === 'failed' ? { errorType: a.errorType ?? 'AgentFailed' } : {}),
    startedAt,
    completedAt,
  };
  // The team's latest execution learns of the end by signal: after a continue-as-new it does not own
  // this workflow any more and no result reaches it.
  if (patched(LONG_TEAMS_PATCH)) {
    await a.team.signal(agentEndedSignal, result).catch((err: unknown) => {
      log.warn('end not reported to the team', { agentId: agent.id, error: describe(err) });
    });
  }
  // A failed agent is a failed workflow (red in the Web UI, its classified failure as the cause); its
  // result rides in the failure's details, so the team still learns its cost, tasks and archive.
  if (state === 'failed' && patched(HONEST_OUTCOMES_PATCH)) throw agentFailure(result);
  return result;
}
