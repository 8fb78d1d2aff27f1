/**
 * `agentWorkflow`: one agent's lifecycle, INITIALIZE → PLAN → ACT → SUMMARIZE → COMPLETE, each step
 * visible in the `status` query. A child of the phase that runs it; its workflow id is
 * `<runId>/<phase>/<agent>`.
 *
 * Backends: `script` (an argv in the workspace), `cli` (the real `claude` CLI; PLAN, ACT and SUMMARIZE are
 * turns of one session, resumed turn after turn and across worker crashes) and `api` (Messages API turns
 * with a tool loop, each tool call its own activity). Routing: `ai` runs the model backend, `static` the
 * script, `hybrid` the model backend and then the script if that failed.
 *
 * One module an idea: ./workflow (the workflow), ./input (its input and ids), ./outcome (attempt
 * outcomes and failures), ./metering (budget limits and pauses), ./cli-turn, ./api-turn and ./script-turn
 * (the backends' turns), ./prompts, ./tools (the api tools an agent may call), ./proxies.
 */
export { agentWorkflow } from './workflow';
export { agentFileId, agentWorkflowId, SUMMARY_CAP, type AgentWorkflowInput } from './input';
export {
  AGENT_HONEST_OUTCOMES_PATCH,
  agentDone,
  logAttemptFailed,
  agentResult,
  agentFailedError,
  describe,
  failedAgentResult,
  failedOutcome,
  failureType,
  type TurnOutcome,
} from './outcome';
export { BUDGET_RESUME_NOTE } from './prompts';
export { scriptOutcome } from './script-turn';
export { allowedApiTools, API_TOOL_NAMES, CLI_TOOL_EQUIVALENTS } from './tools';
