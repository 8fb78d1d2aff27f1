/**
 * Public API names. Workflow types, the task queue, signals, queries and updates are referenced by
 * users (`temporal workflow signal --name rollback`), by other services and by recorded histories:
 * never rename them casually.
 */
export const DEFAULT_TASK_QUEUE = 'orchestrator';

/**
 * The task queue of agent turns (script, `claude` and Messages API turns and an api agent's tool calls)
 * for workflows on `taskQueue`: `orchestrator-agents` by default. The same worker process polls both, each
 * with its own capacity, so that short steps (snapshot, checkpoint, gate, audit) never wait behind
 * long agent turns. Workflows derive it from their own task queue; it is never configured apart.
 */
export function agentTaskQueue(taskQueue: string): string {
  return `${taskQueue}-agents`;
}

/**
 * The task queue of one host's workspace steps for workflows on `taskQueue`: `orchestrator-host-<id>`.
 * Every worker polls the one of its own host id (ORCHESTRATOR_HOST_ID) beside the shared queue; a run
 * records the host its workspace lives on and sends every step that touches the workspace (snapshot,
 * checkpoint, restore, gates) there, and its agent turns to `agentTaskQueue` of it
 * (`orchestrator-host-<id>-agents`).
 */
export function hostTaskQueue(taskQueue: string, hostId: string): string {
  return `${taskQueue}-host-${hostId}`;
}

/** Workflow type names as registered on the worker (they equal the exported function names). */
export const WorkflowType = {
  project: 'projectWorkflow',
  agent: 'agentWorkflow',
  team: 'teamWorkflow',
} as const;

/**
 * Typed search attributes every workflow sets on start and at each transition, so that the Web UI and
 * `temporal workflow list --query "OrchestratorPhase='development'"` can find runs. `type` is the
 * spelling `temporal server start-dev --search-attribute` takes; registered by our dev server, by the
 * worker at start when it may, and by `orchestrator setup` on an existing cluster.
 */
export const SearchAttributes = {
  project: { name: 'OrchestratorProject', type: 'Keyword' },
  client: { name: 'OrchestratorClient', type: 'Keyword' },
  phase: { name: 'OrchestratorPhase', type: 'Keyword' },
  state: { name: 'OrchestratorState', type: 'Keyword' },
  step: { name: 'OrchestratorStep', type: 'Int' },
  costUsd: { name: 'OrchestratorCostUsd', type: 'Double' },
  checkpoint: { name: 'OrchestratorCheckpoint', type: 'Keyword' },
  role: { name: 'OrchestratorRole', type: 'Keyword' },
  run: { name: 'OrchestratorRun', type: 'Keyword' },
} as const;
