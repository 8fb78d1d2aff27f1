/**
 * `orchestrator/definitions`: everything another service needs to talk to our workflows, and nothing
 * that does I/O. Workflow type and task-queue names, every signal, query and update definition, the
 * zod schemas of the workflow inputs and requests with their inferred types, the failure types, and the
 * workflows' own function types (for `client.workflow.start<ProjectWorkflow>`).
 *
 * It imports only `@temporalio/workflow` and `zod`, so it is safe inside another service's workflow
 * sandbox too: a workflow there can signal ours with `getExternalWorkflowHandle(id).signal(rollbackSignal, …)`.
 */
import type { projectWorkflow } from '../../workflows/project/workflow';
import type { teamWorkflow } from '../../workflows/team';

export * from '../shared/names';
export * from '../shared/messages';
export * from '../shared/spec';
export * from '../shared/run';
export * from '../shared/team';
export {
  FAILURES,
  failureCause,
  isBudgetFailure,
  isFailureType,
  isRetryable,
  type FailureCause,
  type FailureInfo,
  type FailureType,
} from '../shared/failures';

/** The type of `projectWorkflow`, for `client.workflow.start<ProjectWorkflow>(WorkflowType.project, …)`. */
export type ProjectWorkflow = typeof projectWorkflow;
/** The type of `teamWorkflow`, for `client.workflow.start<TeamWorkflow>(WorkflowType.team, …)`. */
export type TeamWorkflow = typeof teamWorkflow;
