/**
 * Public API names. Workflow types, the task queue, signals, queries and updates are referenced by
 * users (`temporal workflow signal --name rollback`), by other services and by recorded histories:
 * never rename them casually.
 */
export const DEFAULT_TASK_QUEUE = 'orchestrator';

/** Workflow type names as registered on the worker (they equal the exported function names). */
export const WorkflowType = {
  project: 'projectWorkflow',
  agent: 'agentWorkflow',
  team: 'teamWorkflow',
} as const;

/** Search attributes the project registers on the dev server (`--search-attribute`). */
export const SearchAttributes = {
  project: { name: 'OrchestratorProject', type: 'Keyword' },
  phase: { name: 'OrchestratorPhase', type: 'Keyword' },
} as const;
