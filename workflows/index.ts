/** The workflow entry point bundled by the worker. Every export is a registered workflow type. */
export { projectWorkflow } from './project';
export { agentWorkflow } from './agent';
export { teamWorkflow, teamAgentWorkflow } from './team';
