/**
 * Workspace activities: snapshots in a shadow git repository, exact restores, artifact validation,
 * manifests and forks. The plain functions take explicit arguments and are usable (and tested) without
 * Temporal; {@link createWorkspaceActivities} wraps them for a worker.
 */
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { formatZodIssues } from '../../config/errors';
import type { Logger } from '../../src/logger';
import { validateArtifacts } from './artifacts';
import { WorkspaceError } from './git';
import {
  readCheckpointCommit,
  updateRunManifest,
  writeManifest,
  writeOutput,
  CheckpointRefSchema,
} from './manifest';
import { stageAndList } from './files';
import { withWorkspaceLock } from './lock';
import {
  initWorkspace,
  materializeCheckpoint,
  restoreWorkspace,
  snapshotLocked,
  snapshotWorkspace,
} from './snapshot';
import { SafeNameSchema } from '../../src/shared/ids';
import { AuditEntrySchema } from '../../src/shared/audit';
import { summaryRelPath } from '../../src/shared/handoff';
import { appendAuditEntries } from '../audit';
export { validateArtifacts, sha256File, type ArtifactFile, type ArtifactValidation } from './artifacts';
export { WorkspaceError, shadowGitDir, STATE_DIR, type WorkspaceErrorType } from './git';
export {
  readCheckpointCommit,
  updateRunManifest,
  writeManifest,
  writeOutput,
  phaseManifestPath,
  PhaseManifestSchema,
  RunManifestSchema,
  type PhaseManifest,
  type RunManifest,
  type CheckpointRef,
} from './manifest';
export { initWorkspace, materializeCheckpoint, restoreWorkspace, snapshotWorkspace } from './snapshot';
export { withWorkspaceLock } from './lock';
export { ensureStateDir, holdPath, readHold, writeHold, HOLD_FILE, type WorkspaceHold } from './hold';

/** Errors kept in a checkpoint's result (history); the count is always complete. */
export const MAX_RESULT_ERRORS = 20;

/**
 * What a checkpoint puts into workflow history: counts, totals and references. The artifact list itself
 * (every path, size and sha256) lives only in the manifest file, so a phase with 100,000 artifacts costs
 * history as much as a phase with one.
 */
export interface CheckpointPhaseResult {
  /** False when an artifact check failed; then no snapshot or manifest was made. */
  ok: boolean;
  /** At most {@link MAX_RESULT_ERRORS}; `errorCount` has the total. */
  errors: string[];
  errorCount?: number;
  commit?: string;
  manifestPath?: string;
  /** sha256 of the manifest file as written. */
  manifestSha256?: string;
  /** Artifacts matched (files) and their total size. */
  totals: { files: number; bytes: number };
}

/**
 * The end of a phase in one round trip: validate its artifacts, snapshot the workspace (commit message
 * `<checkpoint> <label>`), write the phase manifest.
 */
export async function checkpointPhase(args: {
  workspace: string;
  outputsDir: string;
  runId: string;
  phase: string;
  checkpoint: string;
  label: string;
  artifacts: readonly { pattern: string; min_count?: number }[];
}): Promise<CheckpointPhaseResult> {
  const workspace = path.resolve(args.workspace);
  // One walk of the tree serves the artifact check, the hashes and the commit: the gates' own when they
  // just offered it (./stage `shareLook`), else a new one; what changed since git last indexed it is
  // staged by the commit itself.
  const done = await withWorkspaceLock(workspace, async () => {
    const { listing, staged } = await stageAndList(workspace, { stage: false, shared: true });
    const validation = await validateArtifacts({ workspace, artifacts: args.artifacts, listing });
    if (!validation.ok) return { validation };
    const message = `${args.checkpoint} ${args.label}\n\nRun ${args.runId}, phase ${args.phase}.`;
    return { validation, snapshot: await snapshotLocked(workspace, message, [], staged) };
  });
  const { validation } = done;
  const totals = {
    files: validation.files.length,
    bytes: validation.files.reduce((n, f) => n + f.size, 0),
  };
  if (!validation.ok || !done.snapshot) {
    const errors = validation.errors.slice(0, MAX_RESULT_ERRORS);
    return {
      ok: false,
      errors,
      ...(errors.length < validation.errors.length ? { errorCount: validation.errors.length } : {}),
      totals,
    };
  }
  const { commit } = done.snapshot;
  const manifest = await writeManifest({ ...args, commit, files: validation.files });
  return {
    ok: true,
    errors: [],
    commit,
    manifestPath: manifest.path,
    manifestSha256: manifest.sha256,
    totals,
  };
}

// Activity inputs arrive from workflow history: validated here so a bad call fails clearly, once.
const absPath = z.string().startsWith('/', 'must be an absolute path');
const ArtifactInput = z.object({ pattern: z.string(), min_count: z.number().int().nonnegative().optional() });
const Inputs = {
  initWorkspace: z.object({ workspace: absPath, holder: z.string().min(1).optional() }),
  snapshotWorkspace: z.object({ workspace: absPath, message: z.string().min(1) }),
  restoreWorkspace: z.object({ workspace: absPath, commit: z.string().min(1) }),
  validateArtifacts: z.object({ workspace: absPath, artifacts: z.array(ArtifactInput) }),
  writeManifest: z.object({
    outputsDir: absPath,
    runId: SafeNameSchema,
    phase: SafeNameSchema,
    checkpoint: z.string().min(1),
    label: z.string().min(1),
    commit: z.string().min(1),
    files: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string() })),
  }),
  updateRunManifest: z.object({
    outputsDir: absPath,
    runId: SafeNameSchema,
    project: z.string().optional(),
    status: z.string().optional(),
    forkedFrom: z.object({ runId: z.string(), checkpoint: z.string() }).optional(),
    phases: z.array(z.string()).optional(),
    checkpoints: z.array(CheckpointRefSchema).optional(),
    costUsd: z.number().optional(),
    usage: z.record(z.string(), z.number()).optional(),
    audit: z.object({ entries: z.number().int().nonnegative(), head: z.string() }).optional(),
    /** The run's last audit entries not yet written (workflows/audit `ride`): appended by this same call. */
    auditEntries: z.array(AuditEntrySchema).optional(),
  }),
  checkpointPhase: z.object({
    workspace: absPath,
    outputsDir: absPath,
    runId: SafeNameSchema,
    phase: SafeNameSchema,
    checkpoint: z.string().min(1),
    label: z.string().min(1),
    artifacts: z.array(ArtifactInput),
    /** The run's audit entries not yet written (workflows/audit `ride`): appended by this same call. */
    audit: z.array(AuditEntrySchema).optional(),
    /** The phase's summary (src/shared/handoff): written to outputs/<run>/<phase>/summary.md. */
    summary: z.string().optional(),
    /**
     * Set up the workspace first, as `initWorkspace` with this holder does (a run's CP0: its setup and
     * its baseline in one round trip).
     */
    init: z.object({ holder: z.string().min(1) }).optional(),
  }),
  materializeCheckpoint: z.object({
    sourceWorkspace: absPath,
    commit: z.string().min(1),
    targetWorkspace: absPath,
  }),
  writeOutput: z.object({
    outputsDir: absPath,
    runId: SafeNameSchema,
    relPath: z.string().min(1),
    content: z.string(),
  }),
  readCheckpointCommit: z.object({
    outputsDir: absPath,
    runId: SafeNameSchema,
    phase: SafeNameSchema,
    checkpoint: SafeNameSchema,
  }),
};

function parseInput<S extends z.ZodType>(name: string, schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw ApplicationFailure.create({
    type: 'InvalidActivityInput',
    message: `${name}: ${formatZodIssues(parsed.error).join('; ')}`,
    nonRetryable: true,
  });
}

/** The activity context, or undefined when the wrapper is called directly (tests, tools). */
function currentContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Rethrows `err`, a {@link WorkspaceError} as the ApplicationFailure of its type (retryable as it says). */
export function toFailure(err: unknown): never {
  if (err instanceof WorkspaceError) {
    throw ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: !err.retryable });
  }
  throw err;
}

/** Builds the workspace activities. Register the returned object (spread) on a worker. */
export function createWorkspaceActivities(deps: { logger: Logger }) {
  const log = deps.logger.child({ component: 'workspace' });

  /** Wraps a plain function: validate input, map WorkspaceError to ApplicationFailure, log the outcome. */
  function activity<S extends z.ZodType, R>(
    name: string,
    schema: S,
    fn: (args: z.output<S>) => Promise<R>,
    summary: (args: z.output<S>, result: R) => Record<string, unknown>,
  ) {
    return async (input: z.input<S>): Promise<R> => {
      const args = parseInput(name, schema, input);
      const started = Date.now();
      // Heartbeats every second, so a worker that dies mid-snapshot or mid-restore is noticed within the
      // heartbeat timeout; the retry then finds git's lock left behind and removes it (./git). Not at the
      // start: the server times the heartbeat from the attempt's start anyway, and these details carry
      // nothing a retry needs, so a first beat at once was a round trip and a write of the run's state on
      // the server for every checkpoint (most take well under a second), and nothing else.
      // A local activity (workflows/project/checkpoint) has no heartbeat: its workflow task times out instead.
      const ctx = currentContext();
      const beats = ctx !== undefined && !ctx.info.isLocal;
      const beat = () => beats && ctx.heartbeat({ activity: name, elapsedMs: Date.now() - started });
      const interval = setInterval(beat, 1_000);
      try {
        const result = await fn(args);
        log.info({ activity: name, ms: Date.now() - started, ...summary(args, result) }, `${name} done`);
        return result;
      } catch (err) {
        log.warn({ activity: name, err: (err as Error).message }, `${name} failed`);
        return toFailure(err);
      } finally {
        clearInterval(interval);
      }
    };
  }

  return {
    initWorkspace: activity('initWorkspace', Inputs.initWorkspace, initWorkspace, (a, r) => ({
      workspace: a.workspace,
      created: r.created,
    })),
    snapshotWorkspace: activity('snapshotWorkspace', Inputs.snapshotWorkspace, snapshotWorkspace, (a, r) => ({
      workspace: a.workspace,
      commit: r.commit,
    })),
    restoreWorkspace: activity('restoreWorkspace', Inputs.restoreWorkspace, restoreWorkspace, (a, r) => ({
      workspace: a.workspace,
      commit: r.commit,
    })),
    validateArtifacts: activity('validateArtifacts', Inputs.validateArtifacts, validateArtifacts, (a, r) => ({
      workspace: a.workspace,
      ok: r.ok,
      files: r.files.length,
    })),
    writeManifest: activity('writeManifest', Inputs.writeManifest, writeManifest, (a, r) => ({
      runId: a.runId,
      phase: a.phase,
      path: r.path,
    })),
    // Only the path goes back into workflow history: the manifest itself grows with every phase.
    updateRunManifest: activity(
      'updateRunManifest',
      Inputs.updateRunManifest,
      async ({ auditEntries, ...a }) => {
        const { path: file } = await updateRunManifest(a);
        // The run's last audit entries ride along at its end, saving an appendAudit round trip. Written
        // after the manifest: a retry redoes both, and appends are idempotent by seq.
        if (auditEntries?.length) {
          await appendAuditEntries({ outputsDir: a.outputsDir, runId: a.runId, entries: auditEntries }, log);
        }
        return { path: file };
      },
      (a, r) => ({
        runId: a.runId,
        path: r.path,
        ...(a.auditEntries?.length ? { auditEntries: a.auditEntries.length } : {}),
      }),
    ),
    checkpointPhase: activity(
      'checkpointPhase',
      Inputs.checkpointPhase,
      async ({ audit, summary, init, ...a }) => {
        // Before the checkpoint's walk: nothing else runs in the workspace between the two.
        if (init) await initWorkspace({ workspace: a.workspace, holder: init.holder });
        const r = await checkpointPhase(a);
        // Written only with a checkpoint taken: the summary of a phase that ended.
        if (summary !== undefined && r.ok) {
          await writeOutput({
            outputsDir: a.outputsDir,
            runId: a.runId,
            relPath: summaryRelPath(a.phase),
            content: summary,
          });
        }
        // The run's audit entries ride along, saving the phase an appendAudit round trip. Written after
        // the checkpoint (whatever its verdict): a retry redoes both, and appends are idempotent by seq.
        if (audit?.length) {
          await appendAuditEntries({ outputsDir: a.outputsDir, runId: a.runId, entries: audit }, log);
        }
        return r;
      },
      (a, r) => ({
        runId: a.runId,
        phase: a.phase,
        checkpoint: a.checkpoint,
        ok: r.ok,
        commit: r.commit,
        files: r.totals.files,
        ...(a.audit?.length ? { auditEntries: a.audit.length } : {}),
        ...(a.init ? { init: true } : {}),
      }),
    ),
    materializeCheckpoint: activity(
      'materializeCheckpoint',
      Inputs.materializeCheckpoint,
      materializeCheckpoint,
      (a, r) => ({ source: a.sourceWorkspace, target: a.targetWorkspace, commit: r.commit }),
    ),
    writeOutput: activity('writeOutput', Inputs.writeOutput, writeOutput, (a, r) => ({
      runId: a.runId,
      path: r.path,
      bytes: r.bytes,
    })),
    readCheckpointCommit: activity(
      'readCheckpointCommit',
      Inputs.readCheckpointCommit,
      readCheckpointCommit,
      (a, r) => ({ runId: a.runId, checkpoint: a.checkpoint, commit: r.commit }),
    ),
  };
}

export type WorkspaceActivities = ReturnType<typeof createWorkspaceActivities>;
