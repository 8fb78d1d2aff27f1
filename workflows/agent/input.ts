/**
 * What a phase gives an agent workflow, and the ids derived from it: the child's workflow id and the
 * file id its transcripts and logs are named by.
 */
import type { MeterLimitsMessage } from '../../src/shared/messages';
import type { AgentSpec } from '../../src/shared/spec';
import type { TurnHost } from '../agent-queue';

export interface AgentWorkflowInput {
  runId: string;
  phase: string;
  agent: AgentSpec & { id: string };
  workspace: string;
  /** The phase preset's system prompt and the project's requirements, for model agents. */
  phasePrompt: string;
  projectName: string;
  requirements: string[];
  /** Summaries of the earlier phases this phase receives (src/shared/handoff), for model agents. */
  handoff?: string;
  /** On a phase retried after failed gates: which gates failed and their output. */
  retryNote?: string;
  /** Output of the previous agent or batch, when the strategy passes outputs along. */
  passedOutput?: string;
  /** Environment every agent process gets (ORCHESTRATOR_RUN_ID, ORCHESTRATOR_AGENT_ID, …). */
  env: Record<string, string>;
  /** What is left of this agent's budget; the cli backend gets it as `--max-budget-usd` when unmetered. */
  maxBudgetUsd?: number;
  /**
   * The meter this agent start spends on (`outputs/<run>/meter/<id>.jsonl`) and the limits every one of
   * its model requests is admitted under. Set by the run; without it the agent is metered under its file id.
   */
  meter?: { id: string; limits: MeterLimitsMessage };
  /**
   * Heartbeat timeout of this agent's turns in seconds (the run's `constraints.agent_heartbeat_timeout_s`);
   * unset: AGENT_TURN_HEARTBEAT_TIMEOUT.
   */
  turnHeartbeatTimeoutS?: number;
  /** The run's outputs folder, decided at run start: transcripts and logs go there, whatever the
   * worker's own ORCHESTRATOR_OUTPUTS_DIR or working directory. */
  outputsDir?: string;
  /** What a budget refusal does: `pause` waits in place (same session) for new limits; `fail` ends the agent. */
  onBudgetExceeded?: 'pause' | 'fail';
  /**
   * The search attributes the namespace has, as the parent learned them: the child need not ask again.
   * Absent (older parents, other callers): the child asks.
   */
  indexedAttributes?: string[];
  /** The run's host: the agent's turns go to its queue (workflows/project/hosts). Absent: the shared one. */
  host?: TurnHost;
}

/** A file-safe id for outputs/<run>/agents/<fileId>.*: phase and agent id joined. */
export function agentFileId(phase: string, agentId: string): string {
  return `${phase}-${agentId}`;
}

/** The child workflow id of an agent: stable, so a replay or retry finds the same child. */
export function agentWorkflowId(runId: string, phase: string, agentId: string): string {
  return `${runId}/${phase}/${agentId}`;
}

/** How much of an agent's summary its result keeps (the end of it). */
export const SUMMARY_CAP = 600;
