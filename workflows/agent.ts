/**
 * `agentWorkflow`: one agent's lifecycle, INITIALIZE → PLAN → ACT → SUMMARIZE → COMPLETE, each step
 * visible in the `status` query. A child of the phase that runs it; its workflow id is
 * `<runId>/<phase>/<agent>`.
 */
import { ApplicationFailure, isCancellation, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { agentStatusQuery, type AgentWorkflowStatus } from '../src/shared/messages';
import { type AgentResult, type AgentStep, ZERO_USAGE } from '../src/shared/run';
import type { AgentSpec } from '../src/shared/spec';

export interface AgentWorkflowInput {
  runId: string;
  phase: string;
  agent: AgentSpec & { id: string };
  workspace: string;
  /** The phase preset's system prompt and the project's requirements, for model agents. */
  phasePrompt: string;
  projectName: string;
  requirements: string[];
  /** Output of the previous agent or batch, when the strategy passes outputs along. */
  passedOutput?: string;
  /** Environment every agent process gets (ORCHESTRATOR_RUN_ID, ORCHESTRATOR_AGENT_ID, …). */
  env: Record<string, string>;
}

/** A file-safe id for outputs/<run>/agents/<fileId>.*: phase and agent id joined. */
export function agentFileId(phase: string, agentId: string): string {
  return `${phase}-${agentId}`;
}

const script = proxyActivities<Pick<Activities, 'scriptTurn'>>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['ScriptNotFound'] },
});

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
  const step = (s: AgentStep) => {
    status.step = s;
  };
  const base = {
    agentId: agent.id,
    role: agent.role,
    backend: agent.backend,
    usage: { ...ZERO_USAGE },
    costUsd: 0,
    startedAt,
  };
  const fileId = agentFileId(input.phase, agent.id);

  try {
    step('PLAN');
    step('ACT');
    if (agent.backend !== 'script' || !agent.command) {
      throw ApplicationFailure.nonRetryable(
        `agent "${agent.id}": backend "${agent.backend}" is not available in this build`,
        'BackendUnavailable',
      );
    }
    const r = await script.scriptTurn({
      runId: input.runId,
      agentId: fileId,
      workspace: input.workspace,
      command: agent.command,
      env: {
        ...input.env,
        ...agent.env,
        ...(input.passedOutput ? { ORCHESTRATOR_PASSED_OUTPUT: input.passedOutput } : {}),
      },
      timeoutS: agent.timeout_s ?? 600,
    });
    status.turns = 1;
    step('SUMMARIZE');
    const result: AgentResult = {
      ...base,
      status: r.ok ? 'completed' : 'failed',
      summary: r.summary,
      outputRef: r.outputRef,
      error: r.ok ? undefined : `script exited with code ${r.exitCode}: ${r.summary.slice(-300)}`,
      completedAt: new Date().toISOString(),
    };
    step(r.ok ? 'COMPLETE' : 'FAILED');
    return result;
  } catch (err) {
    if (isCancellation(err)) {
      step('CANCELLED');
      throw err;
    }
    step('FAILED');
    return {
      ...base,
      status: 'failed',
      summary: '',
      error: describe(err),
      completedAt: new Date().toISOString(),
    };
  }
}

function describe(err: unknown): string {
  if (err instanceof ApplicationFailure) return `${err.type ?? 'Error'}: ${err.message}`;
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

/** Exposed for status rows: the child workflow id of an agent. */
export function agentWorkflowId(runId: string, phase: string, agentId: string): string {
  return `${runId}/${phase}/${agentId}`;
}
