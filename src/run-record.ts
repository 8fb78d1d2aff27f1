/**
 * Reading a run without a worker. A query is answered by a worker of the run's task queue, even for a
 * closed run: with none polling, the server holds the query until its deadline (~35 s) and then fails
 * with "Failed to query Workflow". A closed run has recorded what a reader needs (its final result in
 * history, its manifest in the outputs folder), so readers ask the server who polls first and answer a
 * closed run from its record; a running run without a worker gets a one-line error naming the queue.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { RunManifestSchema, type RunManifest } from '../activities/workspace/manifest';
import { stateFromServer } from './run-state';
import type { Checkpoint, PhaseResult, RunStatus } from './shared/run';
import { stepText } from './shared/visibility';

/** A run that cannot be read: no worker for a live one, nothing recorded for a closed one. */
export class RunUnreadableError extends Error {
  override readonly name = 'RunUnreadableError';
}

/**
 * How many workers poll `taskQueue` for workflow tasks (0 when none has polled in the last minutes),
 * not counting those this host can tell are gone (see {@link goneLocalPoller}).
 */
export async function workflowPollers(client: Client, taskQueue: string): Promise<number> {
  const r = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    // TASK_QUEUE_KIND_NORMAL and TASK_QUEUE_TYPE_WORKFLOW (@temporalio/proto is CommonJS, whose named
    // exports the compiled ESM CLI cannot import).
    taskQueue: { name: taskQueue, kind: 1 },
    taskQueueType: 1,
  });
  return (r.pollers ?? []).filter((p) => !goneLocalPoller(p.identity ?? '')).length;
}

/**
 * Whether a poller is a worker process of this host that has exited. The server lists a worker as a
 * poller for minutes after it stopped, and a query to it waits for a deadline: the reason a finished
 * `--rehearse` run (whose private queue's only worker left with the CLI) took seconds to read. A
 * worker's default identity is `<pid>@<hostname>`; a pid on this host that no longer exists is gone.
 * Anything else (another host, another identity, a live or foreign pid) counts as polling.
 */
export function goneLocalPoller(
  identity: string,
  host: string = os.hostname(),
  alive: (pid: number) => boolean = processExists,
): boolean {
  const m = /^(\d+)@(.+)$/.exec(identity);
  if (!m || m[2] !== host) return false;
  const pid = Number(m[1]);
  return Number.isSafeInteger(pid) && pid > 0 && !alive(pid);
}

/** Signal 0 probes a pid: EPERM means it exists under another user. */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a closed run recorded: its final result (when it completed) and its manifest (when readable). */
export interface RunRecord {
  description: WorkflowExecutionDescription;
  /** The workflow's return value (a completed project run's summary). */
  result?: RecordedSummary;
  manifest?: RunManifest;
  memo: { project?: string; workspace?: string; outputsDir?: string };
  /** A failed run's failed phase and why (the details of its `PhaseFailed` failure). */
  failure?: RecordedFailure;
}

/** What a run that failed on a phase says in its failure's details. */
export interface RecordedFailure {
  phase: string;
  errors: string[];
}

/** The `{phase, errors}` a `PhaseFailed` failure carries, found along the error's causes. */
export function phaseFailureOf(err: unknown): RecordedFailure | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const details = (e as { details?: unknown }).details;
    const d: unknown = Array.isArray(details) ? details[0] : undefined;
    if (d && typeof d === 'object') {
      const { phase, errors } = d as { phase?: unknown; errors?: unknown };
      if (typeof phase === 'string' && Array.isArray(errors))
        return { phase, errors: errors.filter((x): x is string => typeof x === 'string') };
    }
  }
  return undefined;
}

/** The parts of projectWorkflow's summary a reader uses (kept loose: older runs returned less). */
interface RecordedSummary {
  runId?: string;
  checkpoints?: Checkpoint[];
  phases?: RunStatus['phases'];
  rollbacks?: RunStatus['rollbacks'];
  totals?: RunStatus['totals'];
  baseline?: Checkpoint;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Reads the record of a closed run; never throws for a missing part (each is optional). */
export async function readRunRecord(
  client: Client,
  runId: string,
  description: WorkflowExecutionDescription,
): Promise<RunRecord> {
  const m = description.memo ?? {};
  const memo = { project: str(m.project), workspace: str(m.workspace), outputsDir: str(m.outputsDir) };
  let result: RecordedSummary | undefined;
  if (description.status.name === 'COMPLETED') {
    const r: unknown = await client.workflow
      .getHandle(runId, description.runId)
      .result()
      .catch(() => undefined);
    if (r && typeof r === 'object') result = r;
  }
  let failure: RecordedFailure | undefined;
  if (description.status.name === 'FAILED') {
    failure = await client.workflow
      .getHandle(runId, description.runId)
      .result()
      .then(
        () => undefined,
        (err: unknown) => phaseFailureOf(err),
      );
  }
  let manifest: RunManifest | undefined;
  if (memo.outputsDir) {
    try {
      const raw: unknown = JSON.parse(
        fs.readFileSync(path.join(memo.outputsDir, runId, 'manifest.json'), 'utf8'),
      );
      const parsed = RunManifestSchema.safeParse(raw);
      if (parsed.success) manifest = parsed.data;
    } catch {
      // The outputs folder may live on the worker's host only.
    }
  }
  return { description, result, manifest, memo, ...(failure ? { failure } : {}) };
}

/** A closed run's checkpoints from its record: the final result's, else the manifest's. */
export function recordedCheckpoints(runId: string, rec: RunRecord): Checkpoint[] | undefined {
  if (rec.result?.checkpoints) return rec.result.checkpoints;
  if (!rec.manifest) return undefined;
  const byPhase = new Map(rec.manifest.phases.map((p) => [p.checkpoint, p]));
  return rec.manifest.checkpoints.map((c, i) => ({
    id: c.id,
    label: c.label,
    phase: c.phase ?? '',
    phaseIndex: i,
    commit: c.commit,
    manifestPath: path.join(rec.memo.outputsDir ?? '', runId, byPhase.get(c.id)?.manifest ?? ''),
    createdAt: c.createdAt ?? '',
    runId,
  }));
}

/**
 * A closed run's phase results from its record: each checkpointed phase, and the phase it failed on with
 * its reasons (the full results, with agents and usage, need a worker to answer the query).
 */
export function recordedResults(rec: RunRecord): PhaseResult[] | undefined {
  if (!rec.manifest && !rec.failure) return undefined;
  const zero = {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
  const rows: PhaseResult[] = (rec.manifest?.phases ?? []).map((p, index) => ({
    phase: p.phase,
    index,
    attempt: 1,
    status: 'completed',
    startedAt: p.createdAt,
    completedAt: p.createdAt,
    usage: zero,
    costUsd: 0,
    artifactTotals: { files: p.files, bytes: p.bytes },
    errors: [],
    agents: [],
    checkpoint: p.checkpoint,
  }));
  if (rec.failure)
    rows.push({
      phase: rec.failure.phase,
      index: rows.length,
      attempt: 1,
      status: 'failed',
      startedAt: '',
      usage: zero,
      costUsd: 0,
      errors: rec.failure.errors,
      agents: [],
    });
  return rows;
}

/** A closed run's status from its record, in the server's words; undefined when nothing was recorded. */
export function recordedStatus(runId: string, rec: RunRecord): RunStatus | undefined {
  const state = stateFromServer(rec.description.status.name);
  if (!state || (!rec.result && !rec.manifest && !rec.failure)) return undefined;
  const checkpoints = recordedCheckpoints(runId, rec) ?? [];
  const phases: RunStatus['phases'] = rec.result?.phases ?? [
    ...(rec.manifest?.phases ?? []).map((p) => ({
      name: p.phase,
      status: 'completed' as const,
      attempt: 1,
      checkpoint: p.checkpoint,
    })),
    // The phase it failed on, with why: the record says so even when no worker answers.
    ...(rec.failure
      ? [{ name: rec.failure.phase, status: 'failed' as const, attempt: 1, errors: rec.failure.errors }]
      : []),
  ];
  const usage = rec.manifest?.totals.usage ?? {};
  const totals: RunStatus['totals'] = rec.result?.totals ?? {
    usage: usage as RunStatus['totals']['usage'],
    costUsd: rec.manifest?.totals.costUsd ?? 0,
    tokens: Object.values(usage).reduce((n, v) => n + v, 0),
  };
  const last = phases.length;
  return {
    runId,
    project: rec.memo.project ?? rec.manifest?.project ?? runId,
    state,
    ...(phases[last - 1] ? { currentPhase: phases[last - 1]!.name } : {}),
    // As the workflow's own status says it (src/shared/visibility), so `run status --json` reads the same
    // whether the worker answered or the record did.
    step: stepText(last, last),
    phases,
    agents: [],
    checkpoints,
    rollbacks: rec.result?.rollbacks ?? [],
    totals,
    workspace: rec.memo.workspace ?? '',
    outputsDir: rec.memo.outputsDir ?? '',
    ...(rec.manifest?.forkedFrom ? { forkedFrom: rec.manifest.forkedFrom } : {}),
    continuedAsNew: 0,
    ...(rec.result?.baseline ? { baseline: rec.result.baseline } : {}),
  };
}

/** How long a closed run's query may take before its record answers instead. */
const CLOSED_QUERY_MS = 1_500;
/**
 * How long a closed run's query may take, second try, when its record has nothing to show: a loaded
 * worker replaying the run can miss {@link CLOSED_QUERY_MS} (a failed team in CI), and a stopped one the
 * server still lists as a poller costs the reader this much before the error.
 */
const CLOSED_RECORDLESS_QUERY_MS = 10_000;
/** How long a running run's query may take before the reader is told no worker seems to answer. */
const LIVE_QUERY_MS = 15_000;

function isDeadline(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  const message = `${err instanceof Error ? err.message : ''} ${typeof e?.cause?.message === 'string' ? e.cause.message : ''}`;
  // gRPC DEADLINE_EXCEEDED is code 4; the SDK wraps it in "Failed to query Workflow" (a query the
  // workflow does not know is another error).
  return e?.code === 4 || e?.cause?.code === 4 || /deadline exceeded|failed to query workflow/i.test(message);
}

/**
 * Answers a read of `runId`: by `query` when a worker answers, else (for a closed run) by `fromRecord`.
 * A closed run's query gets a short deadline (the server lists a stopped worker as a poller for minutes,
 * so "someone polls" does not mean "someone answers"). A running run without a worker, or a closed one
 * that recorded nothing usable and whose query no worker answered on a second, longer try either,
 * is a {@link RunUnreadableError} naming the task queue and how to start a worker for it.
 */
export async function readRun<T>(
  client: Client,
  runId: string,
  query: () => Promise<T>,
  fromRecord: (rec: RunRecord) => T | undefined,
): Promise<T> {
  const description = await client.workflow.getHandle(runId).describe();
  const queue = description.taskQueue;
  const polled = (await workflowPollers(client, queue).catch(() => 1)) > 0;
  const closed = stateFromServer(description.status.name);
  const start = `start one with \`orchestrator worker --task-queue ${queue}\``;
  if (!closed) {
    if (!polled)
      throw new RunUnreadableError(
        `run ${runId} is running but no worker polls its task queue "${queue}": ${start}`,
      );
    try {
      return await client.connection.withDeadline(Date.now() + LIVE_QUERY_MS, query);
    } catch (err) {
      if (!isDeadline(err)) throw err;
      throw new RunUnreadableError(
        `run ${runId} did not answer within ${LIVE_QUERY_MS / 1000} s: is a worker of task queue "${queue}" alive? ${start}`,
      );
    }
  }
  let queryError: Error | undefined;
  if (polled) {
    try {
      return await client.connection.withDeadline(Date.now() + CLOSED_QUERY_MS, query);
    } catch (err) {
      // Whatever kept the query from answering (a deadline, a worker gone mid-query), the record can.
      queryError = err instanceof Error ? err : new Error(String(err));
    }
  }
  const answer = fromRecord(await readRunRecord(client, runId, description));
  if (answer !== undefined) return answer;
  if (queryError !== undefined && !isDeadline(queryError)) throw queryError;
  if (polled) {
    // The record has nothing to show (a failed team recorded no result), and a worker polls: it may only
    // be slow (a loaded machine, a replay of a long history), so it gets a second, longer try.
    try {
      return await client.connection.withDeadline(Date.now() + CLOSED_RECORDLESS_QUERY_MS, query);
    } catch (err) {
      if (!isDeadline(err)) throw err;
    }
  }
  throw new RunUnreadableError(
    `run ${runId} has ${closed} and recorded nothing this command can show; it needs a worker on task queue "${queue}": ${start}`,
  );
}
