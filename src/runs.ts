/**
 * Client-side operations on project runs, shared by the CLI, the demo, the benchmarks and the tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  type Client,
  type WorkflowExecutionInfo,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { recordRunEnd } from '../activities/workspace/manifest';
import { readRun, recordedCheckpoints, recordedStatus } from './run-record';
import { reconcileState, stateFromServer } from './run-state';
import {
  ApproveRequestSchema,
  approveUpdate,
  budgetQuery,
  BudgetRaiseRequestSchema,
  checkpointsQuery,
  raiseBudgetUpdate,
  rollbackUpdate,
  statusQuery,
  type ApproveRequest,
  type ApproveResult,
  type BudgetRaiseRequest,
  type BudgetRaiseResult,
  type BudgetStatus,
  type RollbackResult,
} from './shared/messages';
import { checkRunInputSize } from './run-input-size';
import { fillCheckpointCommits } from './checkpoint-commits';
import { DEFAULT_TASK_QUEUE, SearchAttributes, WorkflowType } from './shared/names';
import { RUN_WORKFLOW_TASK_TIMEOUT } from './shared/failures';
import { ensureWorkspaceFree, holdWorkspace } from './workspace-hold';
import type { Checkpoint, RunState, RunStatus } from './shared/run';
import { parseDuration } from './shared/duration';
import {
  compactSpec,
  type ProjectSpec,
  type ProjectWorkflowInput,
  ProjectWorkflowInputSchema,
} from './shared/spec';
import { checkWorkspacePath, isInside, prepareWorkspace, WorkspacePathError } from './workspace-path';

/** A run id readable in the Web UI: the project's slug plus a short random suffix. */
export function newRunId(projectName: string): string {
  const slug = projectName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  return `${slug || 'run'}-${randomBytes(3).toString('hex')}`;
}

export interface StartRunOptions {
  spec: ProjectSpec;
  workspace: string;
  outputsDir: string;
  taskQueue?: string;
  runId?: string;
  forkedFrom?: ProjectWorkflowInput['forkedFrom'];
}

/**
 * Validates the input and starts `projectWorkflow` with workflow id = run id. A workspace held by another
 * open run is refused ({@link WorkspaceBusyError}); otherwise this run becomes its holder (a fork's empty
 * target is held from inside the run, once it is materialized). The workspace is created (a fork's is left
 * for the workflow to fill, so a refused fork leaves no folder behind); the outputs folder is resolved here,
 * once, and recorded in the run's input and memo for every later writer.
 */
/** The deadline of a run starting now, from its intake's `constraints.timeline` (none without one). */
export function deadlineFor(spec: ProjectSpec, now = Date.now()): { deadline?: string } {
  const ms = spec.constraints.timeline === undefined ? undefined : parseDuration(spec.constraints.timeline);
  return ms === undefined ? {} : { deadline: new Date(now + ms).toISOString() };
}

export async function startRun(client: Client, opts: StartRunOptions): Promise<ProjectWorkflowInput> {
  // Checked, not created, until the input is validated: a bad run id must not leave anything behind.
  const workspace = checkWorkspacePath(opts.workspace);
  const input = ProjectWorkflowInputSchema.parse({
    runId: opts.runId ?? newRunId(opts.spec.project.name),
    spec: opts.spec,
    workspace,
    outputsDir: path.resolve(opts.outputsDir),
    forkedFrom: opts.forkedFrom,
    ...deadlineFor(opts.spec),
  });
  // Sent without the values the workflow's own parse fills in again: long intakes stay small.
  const sent = { ...input, spec: compactSpec(input.spec) };
  checkRunInputSize(sent);
  if (opts.forkedFrom) await ensureWorkspaceFree(client, workspace, input.runId);
  else {
    // A fork's folder is left for the workflow to fill, so a refused fork leaves no folder behind.
    prepareWorkspace(workspace);
    await holdWorkspace(client, workspace, { runId: input.runId, kind: 'run' });
  }
  await client.workflow.start(WorkflowType.project, {
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    workflowId: input.runId,
    args: [sent],
    workflowTaskTimeout: RUN_WORKFLOW_TASK_TIMEOUT,
    memo: {
      project: input.spec.project.name,
      ...(input.spec.project.client ? { client: input.spec.project.client } : {}),
      workspace: input.workspace,
      outputsDir: input.outputsDir,
    },
    // The Web UI's one-line summary; the current details (step, phase, cost) come from the workflow.
    staticSummary: runSummaryLine(input.spec, opts.forkedFrom),
  });
  return input;
}

/**
 * Queries `status` and settles it with the server: a closed run shows how the server says it ended (a
 * query replays the workflow, which never sees a termination), and its manifest is made to agree.
 */
export async function queryStatus(client: Client, runId: string): Promise<RunStatus> {
  const handle = client.workflow.getHandle(runId);
  // With no worker on its queue a closed run answers from what it recorded (see run-record).
  const status = await readRun(
    client,
    runId,
    () => handle.query(statusQuery),
    (rec) => recordedStatus(runId, rec),
  );
  const serverStatus = (await handle.describe()).status.name;
  const settled = await settleStatus(status, serverStatus);
  // A run that ended without completing says why, in the server's words (the innermost cause).
  // (Only a closed run: result() waits for a running one.)
  const ended =
    settled.error || !stateFromServer(serverStatus)
      ? undefined
      : await closedRun(client, runId, serverStatus).catch(() => undefined);
  return {
    ...settled,
    ...(ended ? { error: ended.error } : {}),
    checkpoints: await fillCheckpointCommits(settled.checkpoints),
    ...(settled.baseline ? { baseline: (await fillCheckpointCommits([settled.baseline]))[0] } : {}),
  };
}

/**
 * A run's checkpoints with CP0 (the workspace before phase 1) first, when the run took one: what
 * `checkpoint list|show`, rollback and fork accept.
 */
export async function queryCheckpointsWithBaseline(client: Client, runId: string): Promise<Checkpoint[]> {
  const cps = await queryCheckpoints(client, runId);
  const { baseline } = await queryStatus(client, runId);
  return baseline ? [baseline, ...cps] : cps;
}

/** A run's checkpoints: by query, or from a closed run's record when no worker polls its queue. */
export async function queryCheckpoints(client: Client, runId: string): Promise<Checkpoint[]> {
  const cps = await readRun(
    client,
    runId,
    () => client.workflow.getHandle(runId).query(checkpointsQuery),
    (rec) => recordedCheckpoints(runId, rec),
  );
  return fillCheckpointCommits(cps);
}

/** The status with the server's verdict, recorded in the run's manifest (in its recorded outputs folder). */
async function settleStatus(status: RunStatus, serverStatus: string): Promise<RunStatus> {
  const state = reconcileState(status.state, serverStatus);
  if (stateFromServer(serverStatus)) await recordEnd(status.outputsDir, status.runId, state);
  return { ...status, state };
}

/** Best effort: the outputs folder may live on the worker's host only. */
async function recordEnd(outputsDir: string | undefined, runId: string, state: RunState): Promise<void> {
  if (!outputsDir) return;
  await recordRunEnd({ outputsDir, runId, status: state }).catch(() => undefined);
}

/** Run states `run list --state` filters by (the server's execution status). */
export const RUN_LIST_STATES = [
  'running',
  'completed',
  'failed',
  'cancelled',
  'terminated',
  'timed_out',
] as const;
export type RunListState = (typeof RUN_LIST_STATES)[number];
const EXECUTION_STATUS: Record<RunListState, string> = {
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Canceled',
  terminated: 'Terminated',
  timed_out: 'TimedOut',
};

/** The server refused a `run list --query` (its message says why). */
export class InvalidListQueryError extends Error {
  override readonly name = 'InvalidListQueryError';
}

/** One row of `run list`: the latest execution of each run, in the same words as `run status`. */
export interface RunListRow {
  runId: string;
  state: RunState;
  started: string;
  closed?: string;
  project?: string;
  client?: string;
}

/** `run list --project/--client`: which runs to keep. */
export interface RunLabelFilter {
  project?: string;
  client?: string;
}

/** Names compare as people type them: case and surrounding spaces do not matter. */
const sameName = (a: string | undefined, b: string) => a?.trim().toLowerCase() === b.trim().toLowerCase();

/** Whether a run with these labels passes the filter (an unset filter field passes everything). */
export function matchesRunLabels(
  labels: { project?: string; client?: string },
  filter: RunLabelFilter,
): boolean {
  if (filter.project !== undefined && !sameName(labels.project, filter.project)) return false;
  if (filter.client !== undefined && !sameName(labels.client, filter.client)) return false;
  return true;
}

/**
 * A run's project and client: from its memo (written at start), else from the search attributes the
 * workflow sets (runs started before the memo had a client).
 */
function runLabels(wf: WorkflowExecutionInfo): { project?: string; client?: string } {
  const memo = wf.memo as { project?: unknown; client?: unknown } | undefined;
  const attr = (key: 'project' | 'client'): string | undefined => {
    const value = wf.typedSearchAttributes
      .getAll()
      .find((p) => p.key.name === SearchAttributes[key].name)?.value;
    return typeof value === 'string' ? value : undefined;
  };
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { project: text(memo?.project) ?? attr('project'), client: text(memo?.client) ?? attr('client') };
}

/**
 * Lists project runs, newest first, one row per run (a run that continued-as-new has one execution per
 * segment on the server). Closed runs' manifests are made to agree with the server, as in queryStatus.
 */
export async function listRuns(
  client: Client,
  limit: number,
  filter: { query?: string; state?: RunListState } & RunLabelFilter = {},
): Promise<RunListRow[]> {
  const latest = new Map<string, WorkflowExecutionInfo>();
  const clauses = [`WorkflowType = '${WorkflowType.project}'`];
  if (filter.state) clauses.push(`ExecutionStatus = '${EXECUTION_STATUS[filter.state]}'`);
  // A visibility query of the caller's, passed through as the server's own language.
  if (filter.query?.trim()) clauses.push(`(${filter.query})`);
  let listing;
  try {
    listing = client.workflow.list({ query: clauses.join(' AND ') });
    for await (const wf of listing) {
      if (!matchesRunLabels(runLabels(wf), filter)) continue;
      const seen = latest.get(wf.workflowId);
      if (!seen || seen.startTime < wf.startTime) latest.set(wf.workflowId, wf);
      if (latest.size > limit) break;
    }
  } catch (err) {
    // The server refuses a malformed query with INVALID_ARGUMENT (gRPC 3) and says why.
    const e = err as { code?: unknown; cause?: { code?: unknown; details?: unknown } };
    if (filter.query && (e.code === 3 || e.cause?.code === 3)) {
      const why = typeof e.cause?.details === 'string' ? e.cause.details : (err as Error).message;
      throw new InvalidListQueryError(`--query "${filter.query}": ${why}`);
    }
    throw err;
  }
  const rows: RunListRow[] = [];
  for (const wf of [...latest.values()].sort((a, b) => b.startTime.getTime() - a.startTime.getTime())) {
    if (rows.length >= limit) break;
    const ended = stateFromServer(wf.status.name);
    if (ended) {
      const outputsDir = (wf.memo as { outputsDir?: unknown } | undefined)?.outputsDir;
      await recordEnd(typeof outputsDir === 'string' ? outputsDir : undefined, wf.workflowId, ended);
    }
    rows.push({
      runId: wf.workflowId,
      state: ended ?? 'running',
      started: wf.startTime.toISOString(),
      closed: ended ? wf.closeTime?.toISOString() : undefined,
      ...runLabels(wf),
    });
  }
  return rows;
}

/** The input a run was started with, read from the first event of its latest execution. */
export async function runInput(client: Client, runId: string): Promise<ProjectWorkflowInput> {
  const history = await client.workflow.getHandle(runId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`run ${runId} has no input in its history`);
  return ProjectWorkflowInputSchema.parse(defaultPayloadConverter.fromPayload(payload));
}

/** Sends update `rollbackToCheckpoint`; a refusal by the validator becomes a one-line error. */
export async function rollbackRun(
  client: Client,
  runId: string,
  checkpoint: string,
  reason?: string,
): Promise<RollbackResult> {
  try {
    return await client.workflow
      .getHandle(runId)
      .executeUpdate(rollbackUpdate, { args: [{ checkpoint, reason }] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError)
      throw new Error(`rollback refused: ${err.cause?.message ?? err.message}`);
    throw err;
  }
}

/**
 * Starts a new run whose workspace is a copy of `runId`'s workspace at `checkpoint`; it continues with the
 * phase after the checkpoint and inherits nothing else.
 */
export async function forkRun(
  client: Client,
  opts: { runId: string; checkpoint: string; workspace: string; taskQueue?: string; newRunId?: string },
): Promise<ProjectWorkflowInput> {
  const source = await runInput(client, opts.runId);
  // A finished run forks from its record even when no worker of its queue is left.
  const cps = await queryCheckpointsWithBaseline(client, opts.runId);
  const cp = cps.find((c) => c.id === opts.checkpoint);
  if (!cp) {
    throw new Error(
      `run ${opts.runId} has no checkpoint "${opts.checkpoint}"; it has: ${cps.map((c) => c.id).join(', ') || 'none'}`,
    );
  }
  if (!cp.commit) {
    throw new Error(
      `checkpoint ${cp.id} of run ${opts.runId}: its commit is in ${cp.manifestPath}, which is not readable here; run the fork where the run's outputs are`,
    );
  }
  const target = checkWorkspacePath(opts.workspace, 'fork workspace');
  if (isInside(target, source.workspace) || isInside(source.workspace, target)) {
    throw new WorkspacePathError(
      `fork workspace ${target} overlaps the source workspace ${source.workspace}: choose a folder outside it`,
    );
  }
  // A target held by an open run is refused naming that run (before the generic "not empty").
  await ensureWorkspaceFree(client, target);
  if (fs.existsSync(target) && fs.readdirSync(target).length > 0) {
    throw new WorkspacePathError(`fork workspace ${target} must be empty or not exist`);
  }
  // The parent's workspace is on its host: the fork is set up there (absent for runs without a host).
  const host = recordedHost(source.outputsDir, opts.runId);
  return startRun(client, {
    spec: source.spec,
    workspace: target,
    outputsDir: source.outputsDir,
    taskQueue: opts.taskQueue,
    runId:
      opts.newRunId ??
      `${opts.runId}-fork-${opts.checkpoint.toLowerCase()}-${randomBytes(2).toString('hex')}`,
    forkedFrom: {
      runId: opts.runId,
      checkpoint: cp.id,
      sourceWorkspace: source.workspace,
      commit: cp.commit,
      phaseIndex: cp.phaseIndex,
      ...(host ? { host } : {}),
    },
  });
}

/**
 * The host a run's workspace is on, from its audit trail (its last `host` entry: placed, or moved to), which
 * a finished run with no worker still has; undefined for a run without a host or an unreadable trail.
 */
export function recordedHost(outputsDir: string, runId: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(outputsDir, runId, 'audit.jsonl'), 'utf8');
  } catch {
    return undefined;
  }
  let host: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.includes('"host"')) continue;
    try {
      const e = JSON.parse(line) as {
        kind?: string;
        details?: { event?: string; host?: unknown; to?: unknown };
      };
      if (e.kind !== 'host') continue;
      const at = e.details?.event === 'moved' ? e.details.to : e.details?.host;
      if (typeof at === 'string') host = at;
    } catch {
      // a torn last line: skipped
    }
  }
  return host;
}

/** Polls `status` until the run closes, calling `onStatus` on each change; returns the final status. */
export async function watchRun(
  client: Client,
  runId: string,
  onStatus: (s: RunStatus) => void,
  intervalMs = 300,
): Promise<RunStatus> {
  const handle = client.workflow.getHandle(runId);
  let last: RunStatus | undefined;
  for (;;) {
    try {
      last = await handle.query(statusQuery);
      onStatus(last);
    } catch {
      // The run may be between executions (continue-as-new) or waiting for a worker: poll again.
    }
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING') {
      try {
        last = await handle.query(statusQuery);
      } catch {
        // A closed run with no worker to answer queries: keep the last status seen.
      }
      const ended = await closedRun(client, runId, desc.status.name);
      if (!last) {
        throw new Error(
          `run ${runId} ended (${desc.status.name}) before any status was seen${ended ? `: ${ended.error}` : ''}`,
        );
      }
      // A run can close failed while its own state still says running (a failure it did not catch, a
      // workflow task that cannot complete): the server's verdict wins, with its reason.
      if (ended) last = { ...last, state: ended.state, error: ended.error };
      last = await settleStatus(last, desc.status.name);
      onStatus(last);
      return last;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * How a closed run ended when it did not complete: its state and the failure's message (the innermost
 * cause, which names the problem), or undefined for a completed run.
 */
export async function closedRun(
  client: Client,
  runId: string,
  status: string,
): Promise<{ state: 'failed' | 'cancelled'; error: string } | undefined> {
  if (status === 'COMPLETED') return undefined;
  const state = status === 'CANCELLED' ? 'cancelled' : 'failed';
  try {
    await client.workflow.getHandle(runId).result();
    return undefined;
  } catch (err) {
    const messages: string[] = [];
    for (let e: unknown = err; e instanceof Error && messages.length < 6; e = e.cause) {
      const type = (e as { type?: unknown }).type;
      messages.push(typeof type === 'string' && type ? `${type}: ${e.message}` : e.message);
    }
    const error = messages.at(-1) ?? `run ${status.toLowerCase()}`;
    return { state, error: `${status.toLowerCase().replace('_', ' ')}: ${error}` };
  }
}

/**
 * An update's failure as one line: a refusal by the workflow, or a run that has already finished (the
 * server answers NOT_FOUND "workflow execution already completed", which must not read as "no such run").
 */
function updateFailure(err: unknown, runId: string, what: string): unknown {
  if (err instanceof WorkflowUpdateFailedError)
    return new Error(`${what} refused: ${err.cause?.message ?? err.message}`);
  if (err instanceof WorkflowNotFoundError && /already completed/i.test(err.message)) {
    return new Error(`${what} refused: run ${runId} has already finished`);
  }
  return err;
}

/** Issues as `path: message`, for requests validated before they are sent. */
function describeIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((i) => `${i.path.map(String).join('.') || 'request'}: ${i.message}`).join('; ');
}

/**
 * Sends update `raiseBudget` (sets the USD and/or token limit at a scope). The request is validated here
 * first; a refusal by the workflow's validator (unknown phase or agent, a finished run) becomes a
 * one-line error.
 */
export async function raiseBudget(
  client: Client,
  runId: string,
  request: BudgetRaiseRequest,
): Promise<BudgetRaiseResult> {
  const parsed = BudgetRaiseRequestSchema.safeParse(request);
  if (!parsed.success) throw new Error(`invalid budget change: ${describeIssues(parsed.error.issues)}`);
  try {
    return await client.workflow.getHandle(runId).executeUpdate(raiseBudgetUpdate, { args: [parsed.data] });
  } catch (err) {
    throw updateFailure(err, runId, 'budget change');
  }
}

/** Sends update `approve`: a run paused by a `pause_for_approval` gate continues as if the gate passed. */
export async function approveRun(
  client: Client,
  runId: string,
  request: ApproveRequest,
): Promise<ApproveResult> {
  const parsed = ApproveRequestSchema.safeParse(request);
  if (!parsed.success) throw new Error(`invalid approval: ${describeIssues(parsed.error.issues)}`);
  try {
    return await client.workflow.getHandle(runId).executeUpdate(approveUpdate, { args: [parsed.data] });
  } catch (err) {
    throw updateFailure(err, runId, 'approval');
  }
}

/** Queries `budget`: the ledger, its report per run, phase, agent and model, and why the run waits. */
export async function queryBudget(client: Client, runId: string): Promise<BudgetStatus> {
  return client.workflow.getHandle(runId).query(budgetQuery);
}

export { readRunAudit } from './audit';

/** `forecast (acme-corp): 6 phases, planning → documentation`, and what a fork came from. */
export function runSummaryLine(
  spec: ProjectWorkflowInput['spec'],
  forkedFrom?: { runId: string; checkpoint: string },
): string {
  const names = spec.phases.map((p) => p.name);
  const client = spec.project.client ? ` (${spec.project.client})` : '';
  const span = names.length > 1 ? `, ${names[0]} → ${names.at(-1)}` : names[0] ? `, ${names[0]}` : '';
  const fork = forkedFrom ? `; forked from ${forkedFrom.runId} at ${forkedFrom.checkpoint}` : '';
  return `${spec.project.name}${client}: ${names.length} phase${names.length === 1 ? '' : 's'}${span}${fork}`;
}
