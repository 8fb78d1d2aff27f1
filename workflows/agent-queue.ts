/**
 * Where agent turns are scheduled: the agent queue of the workflow's own task queue (`<queue>-agents`,
 * src/shared/names agentTaskQueue), where the worker gives them room of their own, so that a fleet of
 * long turns never holds up the short steps (snapshot, checkpoint, gate, audit) of any run.
 */
import { patched, workflowInfo } from '@temporalio/workflow';
import { agentTaskQueue } from '../src/shared/names';

/** The run's host, for an agent whose workspace lives on one (workflows/project/hosts). */
export interface TurnHost {
  /** The host's queue (`<queue>-host-<id>`): turns go to its agent queue. */
  queue: string;
  /** How long a turn may wait for the host's worker before the run moves (ScheduleToStart). */
  moveAfterMs: number;
}

/**
 * Patch id: agent turns (script, `claude`, Messages API turns and an api agent's tool calls) of agent and
 * team agent workflows go to `<queue>-agents` (issue #16). Executions recorded before it scheduled them on
 * the workflow's own task queue, where the worker still runs them.
 */
export const AGENT_TURN_QUEUE_PATCH = 'agent-turn-queue';

/**
 * The activity options that place an agent turn: `<queue>-agents`, or the default queue before the patch;
 * for an agent of a run with a host, the host's agent queue (`<queue>-host-<id>-agents`), with the host's
 * move time as ScheduleToStart timeout.
 */
export function agentTurnQueue(host?: TurnHost): { taskQueue?: string; scheduleToStartTimeout?: number } {
  if (host) return { taskQueue: agentTaskQueue(host.queue), scheduleToStartTimeout: host.moveAfterMs };
  return patched(AGENT_TURN_QUEUE_PATCH) ? { taskQueue: agentTaskQueue(workflowInfo().taskQueue) } : {};
}
