/**
 * `runs prune --older-than 7d`: frees the disk that ended runs hold, their outputs folder
 * (`<outputsDir>/<runId>/`: manifests, transcripts, audit) and the shadow repository of their workspace
 * (`<workspace>/.orchestrator/shadow.git`: every snapshot). A run that is still open is never touched, and
 * neither is a workspace that an open or a kept run still uses. The decision ({@link planPrune}) is pure;
 * {@link pruneRuns} lists the runs, applies it and deletes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { shadowGitDir } from '../activities/workspace/git';
import { readHold } from '../activities/workspace/hold';
import { nameProblem } from './shared/ids';
import { WorkflowType } from './shared/names';
import type { RunState } from './shared/run';
import { stateFromServer } from './run-state';
import { isRunOpen } from './workspace-hold';

/** One project run as the server lists it (its latest execution). */
export interface PruneCandidate {
  runId: string;
  /** Undefined while the run is open. */
  ended?: RunState;
  closedAt?: Date;
  outputsDir?: string;
  workspace?: string;
}

/** One run the plan removes, and what of it. */
export interface PrunedRun {
  runId: string;
  state: RunState;
  closedAt: string;
  /** `<outputsDir>/<runId>`, when the run recorded an outputs folder. */
  outputs?: string;
  /** The workspace's shadow repository, when no run that is kept uses the workspace. */
  shadow?: string;
}

/**
 * Which runs to prune: every ended run closed at least `olderThanMs` before `now`. Its shadow repository
 * goes too unless a run that stays (open, or too recent) has the same workspace: that run's checkpoints
 * live there.
 */
export function planPrune(runs: PruneCandidate[], olderThanMs: number, now: number): PrunedRun[] {
  const pruned = runs.filter(
    (r): r is PruneCandidate & { ended: RunState; closedAt: Date } =>
      r.ended !== undefined &&
      r.closedAt !== undefined &&
      now - r.closedAt.getTime() >= olderThanMs &&
      // The id becomes a path: a malformed one (never written by this project) is left alone.
      nameProblem(r.runId) === undefined,
  );
  const prunedIds = new Set(pruned.map((r) => r.runId));
  const keptWorkspaces = new Set(
    runs.filter((r) => !prunedIds.has(r.runId) && r.workspace).map((r) => path.resolve(r.workspace!)),
  );
  return pruned.map((r) => ({
    runId: r.runId,
    state: r.ended,
    closedAt: r.closedAt.toISOString(),
    ...(r.outputsDir && path.isAbsolute(r.outputsDir) ? { outputs: path.join(r.outputsDir, r.runId) } : {}),
    ...(r.workspace && path.isAbsolute(r.workspace) && !keptWorkspaces.has(path.resolve(r.workspace))
      ? { shadow: shadowGitDir(r.workspace) }
      : {}),
  }));
}

/** What a prune removed (or, dry, would remove): only paths that exist are listed. */
export interface PruneResult {
  dryRun: boolean;
  olderThanMs: number;
  runs: PrunedRun[];
  /** Bytes under the listed paths (before deletion). */
  bytes: number;
}

function candidate(wf: WorkflowExecutionInfo): PruneCandidate {
  const memo = wf.memo as { outputsDir?: unknown; workspace?: unknown } | undefined;
  const ended = stateFromServer(wf.status.name);
  return {
    runId: wf.workflowId,
    ended,
    closedAt: ended ? wf.closeTime : undefined,
    outputsDir: typeof memo?.outputsDir === 'string' ? memo.outputsDir : undefined,
    workspace: typeof memo?.workspace === 'string' ? memo.workspace : undefined,
  };
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** Bytes of the files under `p` (symlinks counted as themselves, never followed). */
async function du(p: string): Promise<number> {
  const st = await fs.lstat(p).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const e of await fs.readdir(p)) total += await du(path.join(p, e));
  return total;
}

/**
 * Lists every project run (the latest execution of each), plans the prune and, unless `dryRun`, deletes.
 * Just before a shadow repository is deleted, its workspace's hold is read again: a run started there
 * meanwhile (or a team run, which this listing does not see) keeps it.
 */
export async function pruneRuns(
  client: Client,
  opts: { olderThanMs: number; dryRun: boolean; now?: number },
): Promise<PruneResult> {
  const latest = new Map<string, WorkflowExecutionInfo>();
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${WorkflowType.project}'` })) {
    const seen = latest.get(wf.workflowId);
    if (!seen || seen.startTime < wf.startTime) latest.set(wf.workflowId, wf);
  }
  const plan = planPrune([...latest.values()].map(candidate), opts.olderThanMs, opts.now ?? Date.now());
  const runs: PrunedRun[] = [];
  let bytes = 0;
  // Runs that shared a workspace share its shadow repository: it is counted (and removed) once.
  const shadows = new Set<string>();
  for (const r of plan) {
    const outputs = r.outputs && (await exists(r.outputs)) ? r.outputs : undefined;
    let shadow = r.shadow && !shadows.has(r.shadow) && (await exists(r.shadow)) ? r.shadow : undefined;
    if (shadow) {
      const hold = await readHold(path.dirname(path.dirname(shadow)));
      if (hold && hold.runId !== r.runId && (await isRunOpen(client, hold.runId))) shadow = undefined;
    }
    if (shadow) shadows.add(shadow);
    if (!outputs && !shadow) continue;
    for (const p of [outputs, shadow]) if (p) bytes += await du(p);
    if (!opts.dryRun) {
      for (const p of [outputs, shadow]) if (p) await fs.rm(p, { recursive: true, force: true });
    }
    runs.push({ ...r, outputs, shadow });
  }
  return { dryRun: opts.dryRun, olderThanMs: opts.olderThanMs, runs, bytes };
}
