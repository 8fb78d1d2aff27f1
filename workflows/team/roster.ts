/**
 * The team's agents from start to end: the agents a team starts with, each agent's child workflow
 * started (capability issued, meter opened) and stopped, and its end processed once, whichever tells
 * first: its child's result or failure, or its `agentEnded` signal. A failed agent may stop the team
 * (policy `onAgentFailure: stop`).
 */
import { ApplicationFailure, log, ParentClosePolicy, startChild } from '@temporalio/workflow';
import { limitsFor } from '../../src/shared/budget';
import { RUN_WORKFLOW_TASK_TIMEOUT } from '../../src/shared/failures';
import { OPERATOR } from '../../src/shared/identity';
import { isActive, stopAgentSignal, TeamRole, type TeamPolicy } from '../../src/shared/team';
import { teamAgentWorkflow } from './agent-workflow';
import { settleAgent } from './budget';
import { carriedAgentResult, describe, failureType } from './failures';
import { identity } from './proxies';
import { requestTeamCheckpoint } from './host';
import { accept, defaultInstructions, initialRoster } from './requests';
import type { TeamRun } from './run';
import type { AgentEnd, AgentRecord, TeamAgentInput, TeamAgentResult } from './types';

/** Who the agents a team starts with were requested by: the human operator who started the team. */
export const TEAM_STARTER = OPERATOR;

/** The first execution records the team's start and accepts its first agents; a continued one says so. */
export function startRoster(run: TeamRun): void {
  const { input, carry, policy } = run;
  if (carry) {
    run.record('run', 'workflow', {
      event: 'team_continued',
      execution: carry.continuedAsNew + 1,
      active: run.records.filter((r) => isActive(r.state)).length,
    });
    return;
  }
  run.record('run', TEAM_STARTER, {
    event: 'team_started',
    goal: input.goal,
    backend: input.backend,
    engineers: input.engineers,
    interns: input.interns,
  });
  for (const [role, name] of initialRoster(input, TeamRole)) {
    if (!policy.roles[role]) {
      throw ApplicationFailure.nonRetryable(`the hierarchy policy has no role "${role}"`, 'InvalidTeamInput');
    }
    const instructions = input.instructions[role] ?? defaultInstructions(input, role, name);
    accept(run, { role, name, instructions, requestedBy: TEAM_STARTER }, 0, 'start');
  }
}

/** The input of an agent's workflow: its record, its role's definition, its limits when metered. */
export function agentInput(run: TeamRun, rec: AgentRecord): TeamAgentInput {
  const { input, policy } = run;
  const role = policy.roles[rec.role]!;
  return {
    runId: run.runId,
    goal: input.goal,
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    backend: input.backend,
    agent: { id: rec.id, name: rec.name, role: rec.role, depth: rec.depth, requestedBy: rec.requestedBy },
    instructions: rec.instructions,
    title: role.title,
    persona: role.persona,
    canRequest: rec.depth < policy.maxRequestDepth ? role.canRequest : [],
    settings: policy.agent,
    model: role.model,
    maxTurns: role.maxTurns,
    subagents: role.subagents,
    sessionId: rec.sessionId,
    ...(rec.capability ? { capability: rec.capability } : {}),
    ...(run.metered.has(rec.id) ? { meter: { limits: limitsFor(run.ledger, rec.role, rec.id) } } : {}),
    ...(run.host ? { host: run.host } : {}),
    ...(run.moves ? { hostMoves: true } : {}),
  };
}

export async function stopAgent(run: TeamRun, rec: AgentRecord): Promise<void> {
  try {
    await run.agentHandle(rec)?.signal(stopAgentSignal, { reason: run.stopReason });
  } catch (err) {
    // The child may have completed in the meantime: nothing left to stop.
    log.info('stop signal not delivered', { agentId: rec.id, error: describe(err) });
    // An inherited agent that cannot be reached has ended without telling (terminated): it is over.
    if (rec.inherited && isActive(rec.state)) {
      await finishAgent(run, rec, {
        err: new Error(`its workflow cannot be reached (${describe(err)}); it ended without reporting`),
      });
    }
  }
}

/** Starts an accepted agent's workflow and processes its end. */
export async function launch(run: TeamRun, rec: AgentRecord): Promise<void> {
  const { input, runId } = run;
  try {
    if (run.capabilities) {
      // Issued before the agent's process can exist: its first request always finds the anchor here.
      const cap = await identity.issueCapability({ outputsDir: input.outputsDir, runId, agentId: rec.id });
      rec.cap = { anchor: cap.teamAnchor, used: 0 };
      rec.capability = { file: cap.file, anchor: cap.agentAnchor };
    }
    // Only model agents spend: they reach the model through the metering gateway, under the limits.
    if (run.budgets && input.backend === 'cli')
      run.metered.set(rec.id, { charged: {}, chain: Promise.resolve(), running: true, paused: false });
    rec.handle = await startChild(teamAgentWorkflow, {
      workflowId: rec.workflowId,
      args: [agentInput(run, rec)],
      // It must outlive this execution when the team continues as new; its tasks get as long as the
      // team's (a busy worker replaying after an eviction needs more than the default 10 s).
      ...(run.longTeams
        ? { parentClosePolicy: ParentClosePolicy.ABANDON, workflowTaskTimeout: RUN_WORKFLOW_TASK_TIMEOUT }
        : {}),
    });
  } catch (err) {
    run.metered.delete(rec.id);
    rec.state = 'failed';
    rec.error = `could not start: ${describe(err)}`;
    run.record('run', 'workflow', { event: 'agent_failed', agentId: rec.id, error: rec.error });
    return;
  }
  if (rec.state === 'starting') rec.state = 'running';
  rec.startedAt ??= new Date().toISOString();
  if (run.stopSent) await stopAgent(run, rec);
  let outcome: AgentEnd;
  try {
    outcome = { result: await rec.handle.result() };
  } catch (err) {
    outcome = { err };
  }
  await finishAgent(run, rec, outcome);
}

/**
 * Processes an agent's end once, whichever tells first: its child's result or failure (agents this
 * execution started), or its `agentEnded` signal (any agent, and the only news of inherited ones).
 */
export async function finishAgent(run: TeamRun, rec: AgentRecord, outcome: AgentEnd): Promise<void> {
  if (run.ended.has(rec.id)) return;
  run.ended.add(rec.id);
  run.finishing += 1;
  try {
    await processEnd(run, rec, outcome);
  } finally {
    run.finishing -= 1;
  }
}

/** Copies an ended agent's result into its record. */
export function applyResult(rec: AgentRecord, r: TeamAgentResult): void {
  rec.state = r.state;
  rec.costUsd = r.costUsd;
  rec.turns = r.turns;
  rec.tasks = r.tasks;
  rec.archivedTo = r.archivedTo;
  rec.sessionId = r.sessionId ?? rec.sessionId;
  rec.error = r.error;
  if (r.errorType) rec.errorType = r.errorType;
  rec.completedAt = r.completedAt;
}

/**
 * Marks an agent failed by `err`: what its failure carried (its result, see ./failures `agentFailure`)
 * wins over what the record knew; a failure that carried nothing is described and typed.
 */
export function applyFailure(rec: AgentRecord, err: unknown, now: string): void {
  const carried = carriedAgentResult(err);
  rec.state = 'failed';
  rec.costUsd = carried?.costUsd ?? rec.costUsd;
  rec.turns = carried?.turns ?? rec.turns;
  rec.tasks = carried?.tasks ?? rec.tasks;
  rec.archivedTo = carried?.archivedTo;
  rec.sessionId = carried?.sessionId ?? rec.sessionId;
  rec.error = carried?.error ?? describe(err);
  rec.errorType = carried?.errorType ?? failureType(err);
  rec.completedAt = carried?.completedAt ?? now;
}

async function processEnd(run: TeamRun, rec: AgentRecord, outcome: AgentEnd): Promise<void> {
  try {
    if ('err' in outcome) throw outcome.err;
    applyResult(rec, outcome.result);
  } catch (err) {
    applyFailure(rec, err, new Date().toISOString());
  }
  await settleAgent(run, rec);
  run.record('run', rec.id, {
    event: `agent_${rec.state}`,
    agentId: rec.id,
    archivedTo: rec.archivedTo,
    costUsd: rec.costUsd,
    error: rec.error,
    ...(rec.errorType ? { errorType: rec.errorType } : {}),
  });
  if (run.honest && rec.state === 'failed') reactToFailure(run, rec);
  // Its archived directory is checkpointed while others still work (./host); the team's end needs none.
  if (run.records.some((r) => isActive(r.state))) requestTeamCheckpoint(run, `${rec.id} ended`);
}

/** Why the team stops when a failed agent stops it (policy `onAgentFailure: stop`), or undefined. */
export function failureStopReason(
  policy: Pick<TeamPolicy, 'onAgentFailure'>,
  state: string,
  rec: Pick<AgentRecord, 'id' | 'name' | 'error' | 'errorType'>,
): string | undefined {
  if (policy.onAgentFailure !== 'stop' || state !== 'running') return undefined;
  return `agent ${rec.id} (${rec.name}) failed: ${(rec.error ?? rec.errorType ?? 'failed').slice(0, 300)}`;
}

/** The policy's reaction to a failed agent: `stop` stops the rest of the team, which then fails. */
function reactToFailure(run: TeamRun, rec: AgentRecord): void {
  const reason = failureStopReason(run.policy, run.state, rec);
  if (reason === undefined) return;
  run.failedBy = rec;
  run.stopReason = reason;
  run.state = 'stopping';
  run.record('run', 'workflow', { event: 'team_stop_requested', reason, policy: 'stop' });
}
