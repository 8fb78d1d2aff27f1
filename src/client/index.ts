/**
 * `orchestrator`: the package's entry point for other Node services. The definitions of
 * `orchestrator/definitions` (names, signals, queries, updates, input schemas and types), plus the typed
 * client operations the CLI itself uses: start a run or a team, read its status, checkpoints and budget,
 * roll back, fork, approve, raise a budget, request teammates and message them. Each takes a connected
 * `@temporalio/client` `Client`; connecting (address, namespace, TLS) stays the caller's choice.
 */
export * from './definitions';
export {
  approveRun,
  closedRun,
  forkRun,
  listRuns,
  newRunId,
  queryBudget,
  queryCheckpoints,
  queryStatus,
  raiseBudget,
  rollbackRun,
  runInput,
  startRun,
  watchRun,
  type RunListRow,
  type StartRunOptions,
} from '../runs';
export {
  markTaskDone,
  requestAgent,
  sendMessage,
  spawnAgent,
  startTeam,
  stopTeam,
  teamStatus,
  SpawnRefusedError,
  TeamError,
  type StartTeamOptions,
} from '../teams';
export { INPUT_SCHEMAS, inputJsonSchema } from './schemas';
