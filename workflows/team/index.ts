/** `teamWorkflow`, `teamAgentWorkflow` and the types their callers use; the modules of this folder are their parts. */
export { teamWorkflow } from './workflow';
export { teamAgentWorkflow } from './agent-workflow';
export type { TeamAgentInput, TeamAgentResult } from './types';
export { agentFailure, carriedAgentResult } from './failures';
export { TEAM_STARTER } from './roster';
export { CAPABILITY_PATCH, HONEST_OUTCOMES_PATCH, LONG_TEAMS_PATCH, TEAM_BUDGET_PATCH } from './patches';
