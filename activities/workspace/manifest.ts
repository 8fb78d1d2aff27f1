/**
 * Run outputs on disk: `<outputsDir>/<runId>/manifest.json` (the run), `<outputsDir>/<runId>/<phase>/
 * manifest-<checkpoint>.json` (one per checkpoint, never overwritten by a later visit of the phase) and
 * large outputs written by activities instead of being passed through workflow history.
 */
import { createHash, randomUUID } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { WorkspaceGlobSchema } from '../../src/shared/spec';
import { type ArtifactFile } from './artifacts';
import { WorkspaceError } from './git';
import { pace, SMALL_FILE_BYTES } from './small';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A run id or phase name used as one folder name: no separators, no `..`. */
export const PathSegmentSchema = z
  .string()
  .regex(SEGMENT, 'must be letters, digits, ".", "-" or "_" (one folder name)');

export const ArtifactFileSchema = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const PhaseManifestSchema = z.object({
  version: z.literal(1),
  runId: z.string(),
  phase: z.string(),
  /** Checkpoint id, e.g. `CP2`. */
  checkpoint: z.string(),
  /** Checkpoint label, e.g. `post-architecture`. */
  label: z.string(),
  /** Shadow-repository commit holding the workspace at this checkpoint. */
  commit: z.string(),
  createdAt: z.string(),
  artifacts: z.array(ArtifactFileSchema),
  totals: z.object({ files: z.number().int(), bytes: z.number().int() }),
});
export type PhaseManifest = z.infer<typeof PhaseManifestSchema>;

export const CheckpointRefSchema = z.object({
  id: z.string(),
  label: z.string(),
  phase: z.string().optional(),
  commit: z.string(),
  createdAt: z.string().optional(),
});
export type CheckpointRef = z.infer<typeof CheckpointRefSchema>;

export const RunManifestSchema = z.object({
  version: z.literal(1),
  runId: z.string(),
  project: z.string().optional(),
  status: z.string().optional(),
  forkedFrom: z.object({ runId: z.string(), checkpoint: z.string() }).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  phases: z.array(
    z.object({
      phase: z.string(),
      checkpoint: z.string(),
      label: z.string(),
      commit: z.string(),
      createdAt: z.string(),
      files: z.number().int(),
      bytes: z.number().int(),
      /** Relative to the run folder. */
      manifest: z.string(),
    }),
  ),
  checkpoints: z.array(CheckpointRefSchema),
  /** The audit trail's head when the manifest was written: `governance audit --verify` checks against it. */
  audit: z.object({ entries: z.number().int().nonnegative(), head: z.string() }).optional(),
  totals: z.object({
    phases: z.number().int(),
    checkpoints: z.number().int(),
    artifacts: z.number().int(),
    bytes: z.number().int(),
    costUsd: z.number().optional(),
    usage: z.record(z.string(), z.number()).optional(),
  }),
});
export type RunManifest = z.infer<typeof RunManifestSchema>;

function segment(value: string, what: string): string {
  if (!SEGMENT.test(value)) {
    throw new WorkspaceError(`${what} "${value}" cannot be used as a folder name`, 'InvalidPath');
  }
  return value;
}

/**
 * Writes via a temp file and rename, so a reader never sees half a file. A small one with blocking calls
 * (./small: a checkpoint writes a few manifests, and the pool's round trips cost more than the writes).
 */
async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${randomUUID().slice(0, 8)}.tmp`;
  if ((typeof data === 'string' ? Buffer.byteLength(data) : data.length) <= SMALL_FILE_BYTES) {
    await pace();
    fsSync.mkdirSync(path.dirname(file), { recursive: true });
    try {
      fsSync.writeFileSync(tmp, data);
      fsSync.renameSync(tmp, file);
    } catch (err) {
      fsSync.rmSync(tmp, { force: true });
      throw err;
    }
    return;
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = schema.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : undefined;
}

/**
 * The commit and time of one checkpoint, from its own manifest. A run that continued-as-new carries its
 * older checkpoints without their commits (the carry stays the same size however many phases ran): a
 * rollback to one of them reads the commit here.
 */
export async function readCheckpointCommit(args: {
  outputsDir: string;
  runId: string;
  phase: string;
  checkpoint: string;
}): Promise<{ commit: string; createdAt: string }> {
  const file = phaseManifestPath(args.outputsDir, args.runId, args.phase, args.checkpoint);
  const m = await readJson(file, PhaseManifestSchema);
  if (!m || m.checkpoint !== args.checkpoint || !m.commit) {
    throw new WorkspaceError(
      `checkpoint ${args.checkpoint}: its manifest ${file} is missing or unreadable, so its commit is unknown`,
      'UnknownCommit',
    );
  }
  return { commit: m.commit, createdAt: m.createdAt };
}

const MANIFEST_FILE = /^manifest-([A-Za-z0-9][A-Za-z0-9._-]*)\.json$/;

/**
 * `<outputsDir>/<runId>/<phase>/manifest-<checkpoint>.json`: a phase that runs again after a rollback
 * takes a new checkpoint and so writes a new file; `checkpoint show` of the old one still shows its own.
 */
export function phaseManifestPath(
  outputsDir: string,
  runId: string,
  phase: string,
  checkpoint: string,
): string {
  return path.join(
    outputsDir,
    segment(runId, 'run id'),
    segment(phase, 'phase'),
    `manifest-${segment(checkpoint, 'checkpoint')}.json`,
  );
}

/** Writes the manifest of one phase checkpoint: id, label, commit, time and every artifact's hash. */
export async function writeManifest(args: {
  outputsDir: string;
  runId: string;
  phase: string;
  checkpoint: string;
  label: string;
  commit: string;
  files: readonly ArtifactFile[];
}): Promise<{ path: string; sha256: string }> {
  const file = phaseManifestPath(args.outputsDir, args.runId, args.phase, args.checkpoint);
  const manifest: PhaseManifest = {
    version: 1,
    runId: args.runId,
    phase: args.phase,
    checkpoint: args.checkpoint,
    label: args.label,
    commit: args.commit,
    createdAt: new Date().toISOString(),
    artifacts: args.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
    totals: { files: args.files.length, bytes: args.files.reduce((n, f) => n + f.size, 0) },
  };
  const data = Buffer.from(JSON.stringify(manifest, null, 2) + '\n', 'utf8');
  await writeFileAtomic(file, data);
  return { path: file, sha256: createHash('sha256').update(data).digest('hex') };
}

/**
 * Rewrites `<outputsDir>/<runId>/manifest.json` from the phase manifests on disk plus the totals the
 * caller knows (cost, usage, status). Fields not passed keep their previous value.
 */
export async function updateRunManifest(args: {
  outputsDir: string;
  runId: string;
  project?: string;
  status?: string;
  forkedFrom?: { runId: string; checkpoint: string };
  /** Only checkpoints of these phases count (after a rollback the workflow passes the valid ones). */
  phases?: readonly string[];
  /** The run's live checkpoints, in order: their manifests make the phase list. Default: every
   * checkpoint manifest on disk, oldest first. */
  checkpoints?: readonly CheckpointRef[];
  costUsd?: number;
  /** Token counts by kind (input, output, cache_read, …), totals for the run. */
  usage?: Readonly<Record<string, number>>;
  /** Count and hash of the audit trail's last entry. */
  audit?: { entries: number; head: string };
}): Promise<{ path: string; manifest: RunManifest }> {
  const runDir = path.join(args.outputsDir, segment(args.runId, 'run id'));
  const file = path.join(runDir, 'manifest.json');
  const previous = await readJson(file, RunManifestSchema);

  // Which checkpoint manifests count: the caller's checkpoints, or every one on disk.
  let wanted: { phase: string; checkpoint: string }[];
  if (args.checkpoints) {
    wanted = args.checkpoints.flatMap((c) => (c.phase ? [{ phase: c.phase, checkpoint: c.id }] : []));
  } else {
    wanted = [];
    const dirents = await fs.readdir(runDir, { withFileTypes: true }).catch(() => []);
    for (const d of dirents.filter((e) => e.isDirectory() && SEGMENT.test(e.name))) {
      for (const f of await fs.readdir(path.join(runDir, d.name)).catch(() => [])) {
        const cp = MANIFEST_FILE.exec(f)?.[1];
        if (cp) wanted.push({ phase: d.name, checkpoint: cp });
      }
    }
  }
  if (args.phases) {
    const keep = new Set(args.phases);
    wanted = wanted.filter((w) => keep.has(w.phase));
  }
  const phaseManifests: PhaseManifest[] = [];
  for (const w of wanted) {
    const file = phaseManifestPath(args.outputsDir, args.runId, w.phase, w.checkpoint);
    const m = await readJson(file, PhaseManifestSchema);
    if (m) phaseManifests.push(m);
  }
  if (!args.checkpoints) phaseManifests.sort((a, b) => a.createdAt.localeCompare(b.createdAt));

  const phases = phaseManifests.map((m) => ({
    phase: m.phase,
    checkpoint: m.checkpoint,
    label: m.label,
    commit: m.commit,
    createdAt: m.createdAt,
    files: m.totals.files,
    bytes: m.totals.bytes,
    manifest: `${m.phase}/manifest-${m.checkpoint}.json`,
  }));
  // Checkpoints carried across continue-as-new come without their commits: their manifests have them.
  const byId = new Map(phaseManifests.map((m) => [m.checkpoint, m]));
  const checkpoints =
    args.checkpoints?.map((c) =>
      c.commit
        ? { ...c }
        : { ...c, commit: byId.get(c.id)?.commit ?? '', createdAt: c.createdAt || byId.get(c.id)?.createdAt },
    ) ??
    phases.map((p) => ({
      id: p.checkpoint,
      label: p.label,
      phase: p.phase,
      commit: p.commit,
      createdAt: p.createdAt,
    }));
  const now = new Date().toISOString();
  const costUsd = args.costUsd ?? previous?.totals.costUsd;
  const usage = args.usage ? { ...args.usage } : previous?.totals.usage;
  const manifest: RunManifest = {
    version: 1,
    runId: args.runId,
    project: args.project ?? previous?.project,
    status: args.status ?? previous?.status,
    forkedFrom: args.forkedFrom ?? previous?.forkedFrom,
    createdAt: previous?.createdAt ?? now,
    updatedAt: now,
    phases,
    checkpoints,
    ...((args.audit ?? previous?.audit) ? { audit: args.audit ?? previous?.audit } : {}),
    totals: {
      phases: phases.length,
      checkpoints: checkpoints.length,
      artifacts: phases.reduce((n, p) => n + p.files, 0),
      bytes: phases.reduce((n, p) => n + p.bytes, 0),
      ...(costUsd !== undefined ? { costUsd } : {}),
      ...(usage !== undefined ? { usage } : {}),
    },
  };
  await writeFileAtomic(file, JSON.stringify(manifest, null, 2) + '\n');
  return { path: file, manifest };
}

/**
 * Writes a large output (a transcript, a report) to `<outputsDir>/<runId>/<relPath>` so that workflow
 * history carries only its path and hash.
 */
export async function writeOutput(args: {
  outputsDir: string;
  runId: string;
  relPath: string;
  content: string;
}): Promise<{ path: string; bytes: number; sha256: string }> {
  const rel = WorkspaceGlobSchema.safeParse(args.relPath);
  if (!rel.success) {
    throw new WorkspaceError(
      `output path "${args.relPath}": ${rel.error.issues[0]?.message ?? 'invalid'}`,
      'InvalidPath',
    );
  }
  const file = path.join(args.outputsDir, segment(args.runId, 'run id'), rel.data);
  const data = Buffer.from(args.content, 'utf8');
  await writeFileAtomic(file, data);
  return { path: file, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/**
 * Records how a run ended in its manifest when the writer of the run could not: a terminated run runs no
 * more code, so the first client that sees it closed writes the server's verdict. Creates the manifest
 * from the checkpoint manifests on disk when there is none; returns whether anything changed.
 */
export async function recordRunEnd(args: {
  outputsDir: string;
  runId: string;
  status: string;
}): Promise<boolean> {
  const file = path.join(args.outputsDir, segment(args.runId, 'run id'), 'manifest.json');
  const previous = await readJson(file, RunManifestSchema);
  if (previous?.status === args.status) return false;
  if (!previous) {
    await updateRunManifest({ outputsDir: args.outputsDir, runId: args.runId, status: args.status });
    return true;
  }
  const manifest: RunManifest = { ...previous, status: args.status, updatedAt: new Date().toISOString() };
  await writeFileAtomic(file, JSON.stringify(manifest, null, 2) + '\n');
  return true;
}
