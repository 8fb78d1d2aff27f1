/**
 * A script agent's turn: its command run in the workspace by the scriptTurn activity.
 */
import { ZERO_USAGE } from '../../src/shared/run';
import type { AgentWorkflowInput } from './input';
import type { TurnOutcome } from './outcome';
import { script } from './proxies';

/**
 * A script agent's turn: its command run in the workspace by the scriptTurn activity, as an outcome. An
 * exit other than 0 is the agent's own failure (`AgentExited`, counted against its attempts).
 */
export async function scriptOutcome(
  input: AgentWorkflowInput,
  command: string[],
  fileId: string,
  fallbackNote = '',
): Promise<TurnOutcome> {
  const { agent } = input;
  const r = await script(input.host, input.turnHeartbeatTimeoutS).scriptTurn({
    runId: input.runId,
    agentId: fileId,
    ...(input.outputsDir ? { outputsDir: input.outputsDir } : {}),
    workspace: input.workspace,
    command,
    env: {
      ...input.env,
      ...agent.env,
      ...(input.passedOutput ? { ORCHESTRATOR_PASSED_OUTPUT: input.passedOutput } : {}),
    },
    timeoutS: agent.timeout_s ?? 600,
  });
  return {
    ok: r.ok,
    summary: r.summary,
    outputRef: r.outputRef,
    usage: { ...ZERO_USAGE },
    costUsd: 0,
    error: r.ok
      ? undefined
      : `${fallbackNote}script exited with code ${r.exitCode}: ${r.summary.slice(-300)}`,
    ...(r.ok ? {} : { errorType: 'AgentExited' }),
  };
}
