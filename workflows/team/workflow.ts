/**
 * `teamWorkflow`: a team of agents that grows at run time. It starts a manager and an architect (and
 * optionally engineers and interns), each a child `teamAgentWorkflow` with id `<runId>/<agentId>`
 * (./agent-workflow). Teammates are requested by signal `spawnAgent` or update `requestAgent` (whose
 * validator refuses what the hierarchy policy forbids; ./requests, ./auth); an accepted request starts
 * its child in the same workflow task (./roster). Requests are deduplicated by name, and child ids are
 * deterministic, so a retried or replayed request never starts a second agent. The run ends when every
 * agent has finished (and is archived), or on `stopTeam`; a long team continues as new (./continue,
 * ./carry). Budgets: ./budget. Every decision goes into the audit trail (workflows/audit).
 *
 * This file holds the main loop; the team's state is one TeamRun (./run), its handlers are in
 * ./handlers.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  log,
  workflowInfo,
} from '@temporalio/workflow';
import type { TeamStatus, TeamWorkflowInput } from '../../src/shared/team';
import { isActive } from '../../src/shared/team';
import type { TeamCarry } from '../../src/shared/team-carry';
import { teamVerdict } from '../../src/shared/team-outcome';
import { historyFull, quiet } from './continue';
import { failureType } from './failures';
import { claimTeamHost, firstTeamCheckpoint } from './host';
import { setTeamHandlers } from './handlers';
import { checkCarriedEnds } from './ends';
import { launch, startRoster, stopAgent } from './roster';
import { parseTeamInput, TeamRun } from './run';

/** How long audit entries gather before they are appended to audit.jsonl together. */
const AUDIT_BATCH_WINDOW = '1 second';

export async function teamWorkflow(raw: TeamWorkflowInput, carry?: TeamCarry): Promise<TeamStatus> {
  const run = new TeamRun(parseTeamInput(raw), carry);
  const { input, runId, records, pending } = run;
  setTeamHandlers(run);
  startRoster(run);
  // End claims the last execution was still checking (./ends).
  checkCarriedEnds(run);
  // The audit file is written in the background, in batches, so that no request waits for a disk write
  // and a burst of requests costs one activity. Entries not yet written are workflow state: none is lost.
  const auditWriter = run.trail.background(AUDIT_BATCH_WINDOW);
  // Before the first agent starts: its directory and turns go to the host (./host).
  if (run.hosted && !run.host) await claimTeamHost(run);
  // And its workspace is checkpointed there, so that the team can move (patch `team-host-move`).
  if (run.moves) await firstTeamCheckpoint(run);
  const launches: Promise<void>[] = [];
  const allEnded = () => records.every((r) => !isActive(r.state));
  for (;;) {
    await condition(
      () =>
        pending.length > 0 ||
        (run.stopReason !== undefined && !run.stopSent) ||
        allEnded() ||
        (run.longTeams && historyFull(run)),
    );
    while (pending.length > 0) launches.push(launch(run, pending.shift()!));
    if (run.stopReason !== undefined && !run.stopSent) {
      run.stopSent = true;
      await Promise.all(
        records.filter((r) => run.agentHandle(r) && isActive(r.state)).map((r) => stopAgent(run, r)),
      );
    }
    if (pending.length === 0 && allEnded()) break;
    if (run.longTeams && historyFull(run)) {
      // Drain: every accepted request started, every handler and agent end processed. A request that
      // arrives meanwhile is queued for the next execution (patch `team-drain-queue`; before it, it was
      // launched here too, and a flood kept the drain going); nothing is dropped at the boundary.
      run.draining = run.drainQueue;
      for (;;) {
        while (pending.length > 0) launches.push(launch(run, pending.shift()!));
        await condition(() => pending.length > 0 || quiet(run));
        if (quiet(run)) break;
      }
      if (allEnded()) break;
      if (run.stopReason !== undefined && !run.stopSent) run.stopDraining();
      else {
        log.info('team continues as new', {
          runId,
          events: workflowInfo().historyLength,
          bytes: workflowInfo().historySize,
          agents: records.length,
          active: records.filter((r) => isActive(r.state)).length,
        });
        // Entries not yet written ride in the carry; the next execution writes them (appends are idempotent).
        return await continueAsNew<typeof teamWorkflow>(input, run.carryState());
      }
    }
  }
  await Promise.all(launches);
  if (run.moves) await condition(() => !run.checkpointing && !run.moving);
  const verdict = run.honest ? teamVerdict(records, run.failedBy?.id) : undefined;
  const lost = run.moveFailure !== undefined;
  run.state = verdict || lost ? 'failed' : run.stopReason !== undefined ? 'stopped' : 'completed';
  run.completedAt = new Date().toISOString();
  run.record('run', 'workflow', {
    event: `team_${run.state}`,
    agents: records.length,
    costUsd: run.status().totals.costUsd,
    ...(verdict ? { reason: verdict.message, failed: verdict.failed } : {}),
  });
  await auditWriter.close();
  await condition(allHandlersFinished);
  if (lost) {
    // Its host is gone and it could not move (./host): the move's own failure says why.
    throw ApplicationFailure.create({
      type: failureType(run.moveFailure),
      message: run.stopReason ?? 'the team lost its host',
      nonRetryable: true,
      details: [{ runId, host: run.host?.hostId }],
    });
  }
  if (verdict) {
    // The status query still answers (state `failed`); the failure names the agents, kept short.
    throw ApplicationFailure.create({
      type: 'TeamFailed',
      message: verdict.message,
      nonRetryable: true,
      // Bounded: a team of hundreds keeps its history small; the status query lists every agent.
      details: [{ runId, failedCount: verdict.failed.length, failed: verdict.failed.slice(0, 50) }],
    });
  }
  return run.status();
}
