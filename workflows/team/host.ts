/**
 * A team's host (README "Many hosts"): a team's workspace lives on one host, as a run's does
 * (../project/hosts), and every step that touches it (each agent's directory operations and its turns)
 * goes to that host's queues. A new team (patch `team-host-queue`) claims its host with the run's own
 * `claimHost` before it starts its first agent; the host rides in the continue-as-new carry and in every
 * agent's input, and status and the audit trail show it.
 *
 * A team moves when its host is lost (patch `team-host-move`), as a run does. It checkpoints its workspace
 * with the run's own `checkpointPhase` on its host (a snapshot into the shadow repository, pushed to the
 * checkpoint store as `CP<n>`, a manifest under outputs/<team>/team/): before its first agent starts, and
 * after each agent's round and end, one at a time (requests that land meanwhile make one more). A step sent
 * to the host that waited past the move time (a ScheduleToStart timeout, ../host-lost) means the host is
 * gone: the agent that saw it signals `teamHostLost`, or the team's own checkpoint saw it. The team then
 * moves once: `adoptWorkspace` (the run's) restores the last checkpoint on a live host, which becomes the
 * team's host, and every active agent is signalled `teamHostMoved` and retries there the step the lost
 * host never ran (./agent-run `onHost`). Whatever the agents did after that checkpoint is gone with the
 * host; their task files are as of the checkpoint, and a retried turn starts from there.
 */
import { ApplicationFailure, condition, log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { HEARTBEAT_TIMEOUT, retryPolicy } from '../../src/shared/failures';
import { isActive, teamHostMovedSignal } from '../../src/shared/team';
import { isHostLost } from '../host-lost';
import { hosts, hostPlacement } from '../host-placement';
import { describe } from './failures';
import type { TeamRun } from './run';

/** The phase name a team's checkpoints are filed under (their manifests: outputs/<team>/team/). */
export const TEAM_CHECKPOINT_PHASE = 'team';

/** How many times a team claims a host for its first checkpoint before it gives up. */
const MAX_FIRST_CLAIMS = 3;

/** Claims the team's host, once, before any of its agents starts (a continued team has it already). */
export async function claimTeamHost(run: TeamRun): Promise<void> {
  if (!run.hosted || run.host) return;
  run.host = await hosts.claimHost();
  log.info('team placed on host', { runId: run.runId, host: run.host.hostId });
  run.record('host', 'workflow', { event: 'placed', host: run.host.hostId, queue: run.host.queue });
}

function checkpointing(host: NonNullable<TeamRun['host']>) {
  return proxyActivities<Pick<Activities, 'checkpointPhase'>>({
    ...hostPlacement(host),
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: retryPolicy(),
  });
}

/**
 * The team's first checkpoint, before its first agent starts (or, for a team continued from an execution
 * that kept none, before it goes on): what a move restores when nothing later was taken. A host lost
 * before it held nothing of the team: the team claims another (at most three times). A checkpoint that
 * fails otherwise is logged: the team works on, and would fail with its host, as before it could move.
 */
export async function firstTeamCheckpoint(run: TeamRun): Promise<void> {
  if (!checkpoints(run) || run.checkpoint) return;
  for (let claims = 1; ; claims++) {
    const host = run.host!;
    try {
      await takeCheckpoint(run, 'team start');
      return;
    } catch (err) {
      if (!isHostLost(err)) {
        // A team that cannot checkpoint still works, as before it could: it only cannot move.
        log.warn('team checkpoint not taken', { runId: run.runId, error: describe(err) });
        run.record('checkpoint', 'workflow', { event: 'failed', error: describe(err).slice(0, 500) });
        return;
      }
      if (claims >= MAX_FIRST_CLAIMS) throw err;
      run.host = await hosts.claimHost();
      run.record('host', 'workflow', {
        event: 'moved',
        from: host.hostId,
        to: run.host.hostId,
        during: 'setup',
      });
    }
  }
}

/**
 * Whether the team takes checkpoints: it can move (patch `team-host-move`), and its host has a checkpoint
 * store to move from. A host that says it has none (`store: false`) gets none: a move would fail with
 * `NoCheckpointStore` anyway, as it does with no checkpoint, so they would only cost a snapshot per
 * round. A host claimed before hosts said (`store` absent, recorded histories) keeps taking them.
 */
function checkpoints(run: TeamRun): boolean {
  return run.moves && run.host?.store !== false;
}

async function takeCheckpoint(run: TeamRun, label: string): Promise<void> {
  const host = run.host!;
  const n = (run.checkpoint?.n ?? -1) + 1;
  const id = `CP${n}`;
  const r = await checkpointing(host).checkpointPhase({
    workspace: run.input.workspace,
    outputsDir: run.input.outputsDir,
    runId: run.runId,
    phase: TEAM_CHECKPOINT_PHASE,
    checkpoint: id,
    label,
    artifacts: [],
  });
  if (!r.ok || !r.commit) {
    throw ApplicationFailure.nonRetryable(
      `team checkpoint ${id}: ${r.errors.join('; ')}`,
      'CheckpointFailed',
    );
  }
  run.checkpoint = { n, id, commit: r.commit };
  run.record('checkpoint', 'workflow', { id, commit: r.commit, label, host: host.hostId });
}

/**
 * Asks for a checkpoint of the team's workspace (after an agent's round or end). Checkpoints are taken one
 * at a time in the background; what is asked meanwhile is one more checkpoint, after the current one.
 */
export function requestTeamCheckpoint(run: TeamRun, label: string): void {
  if (!checkpoints(run) || !run.checkpoint || run.moveFailure !== undefined) return;
  run.checkpointWanted = label;
  if (run.checkpointing) return;
  run.checkpointing = true;
  void (async () => {
    try {
      while (run.checkpointWanted !== undefined && run.moveFailure === undefined) {
        const wanted = run.checkpointWanted;
        run.checkpointWanted = undefined;
        if (run.moving) await condition(() => !run.moving);
        const host = run.host!;
        try {
          await takeCheckpoint(run, wanted);
        } catch (err) {
          if (isHostLost(err)) {
            // The host is gone: the team moves, and the checkpoint is taken again on the new host.
            await moveTeam(run, host.hostId, describe(err));
            run.checkpointWanted ??= wanted;
          } else {
            // A checkpoint that cannot be taken fails nothing: the team moves, if it must, from the last one.
            log.warn('team checkpoint not taken', { runId: run.runId, error: describe(err) });
          }
        }
      }
    } finally {
      run.checkpointing = false;
    }
  })();
}

/**
 * Moves the team off its lost host `lost`, once (a move under way, or done, is not repeated): a live worker
 * restores the last checkpoint from the store and becomes the host, and every active agent is told. A
 * move that fails (no checkpoint store) stops the team, which then fails with it.
 */
export async function moveTeam(run: TeamRun, lost: string, reason: string): Promise<void> {
  if (run.moving) {
    await condition(() => !run.moving);
    return;
  }
  const from = run.host;
  if (!from || from.hostId !== lost || run.moveFailure !== undefined) return;
  const cp = run.checkpoint;
  run.moving = true;
  try {
    if (!cp && from.store === false) {
      // Its host had no store, so the team kept no checkpoints (checkpoints()): say so, as a run would.
      throw ApplicationFailure.nonRetryable(
        `host ${lost} has no checkpoint store (ORCHESTRATOR_CHECKPOINT_STORE), so the team kept no checkpoint to move from`,
        'NoCheckpointStore',
      );
    }
    if (!cp) throw ApplicationFailure.nonRetryable(`the team has no checkpoint to move from`, 'PhaseFailed');
    log.warn('host lost: moving the team', { runId: run.runId, host: lost, checkpoint: cp.id, reason });
    const to = await hosts.adoptWorkspace({
      runId: run.runId,
      workspace: run.input.workspace,
      checkpoint: cp.id,
      commit: cp.commit,
      from: lost,
    });
    run.host = to;
    run.record('host', 'workflow', {
      event: 'moved',
      from: lost,
      to: to.hostId,
      checkpoint: cp.id,
      commit: cp.commit,
      reason: reason.slice(0, 500),
    });
  } catch (err) {
    run.moveFailure = err;
    run.record('host', 'workflow', { event: 'move_failed', from: lost, error: describe(err).slice(0, 500) });
    if (run.state === 'running') {
      run.stopReason = `host ${lost} was lost and the team could not move: ${describe(err).slice(0, 300)}`;
      run.state = 'stopping';
    }
  } finally {
    run.moving = false;
  }
  tellAgents(run);
}

/** Tells every active agent where the team's workspace is now (and, after a failed move, nothing). */
function tellAgents(run: TeamRun): void {
  if (run.moveFailure !== undefined) return;
  for (const rec of run.records) {
    const handle = isActive(rec.state) ? run.agentHandle(rec) : undefined;
    if (handle) tellAgent(run, handle);
  }
}

function tellAgent(run: TeamRun, handle: NonNullable<ReturnType<TeamRun['agentHandle']>>): void {
  void handle.signal(teamHostMovedSignal, run.host!).catch((err: unknown) => {
    log.info('host move not delivered', { workflowId: handle.workflowId, error: describe(err) });
  });
}

/**
 * An agent says a step it sent to `host` was never taken: the team moves when that is its host, or tells
 * the agent where it is now when it has moved already.
 */
export function onAgentHostLost(run: TeamRun, p: { agentId: string; host: string }): void {
  if (!run.moves) return;
  const rec = run.byId(p.agentId);
  if (!rec) return;
  if (run.host?.hostId === p.host || run.moving) {
    void moveTeam(run, p.host, `agent ${rec.id}: a step on ${p.host} waited past the move time`);
    return;
  }
  const handle = run.agentHandle(rec);
  if (handle && run.moveFailure === undefined) tellAgent(run, handle);
}
