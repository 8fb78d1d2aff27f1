/**
 * Sinks: calls from workflow code into the worker process that produce no commands and no history (the
 * worker runs them after the workflow task, never on replay).
 */
import type { Sinks } from '@temporalio/workflow';

/** What an agent workflow tells the worker about its running turns. */
export interface AgentTurnSinks extends Sinks {
  agentTurns: {
    /**
     * This agent workflow was asked to cancel: its running turn should ask the server now rather than at
     * its next heartbeat (activities/turn-heartbeat). Only a hint; the cancellation itself reaches the
     * turn through the server, as always.
     */
    cancelRequested(): void;
  };
}
