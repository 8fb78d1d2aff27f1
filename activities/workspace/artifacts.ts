/** Artifact checks: do the files a phase promised exist, and what exactly are they (size, sha256)? */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ArtifactSpecSchema, type ArtifactSpec } from '../../src/shared/spec';
import {
  hashFile,
  knownHash,
  listWorkspace,
  mapLimit,
  matcher,
  rememberHash,
  symlinksOnPrefix,
  type WorkspaceEntry,
  type WorkspaceListing,
} from './files';

/** One file found for an artifact pattern; `path` is relative to the workspace, with `/`. */
export interface ArtifactFile {
  path: string;
  size: number;
  sha256: string;
}

export interface ArtifactValidation {
  ok: boolean;
  /** Every file matched by any pattern, once, sorted by path. */
  files: ArtifactFile[];
  /** One line per failed pattern, e.g. `artifact "src/*.txt": found 0 files, need at least 1`. */
  errors: string[];
}

/** Hex sha256 of a file, streamed so that large artifacts do not sit in memory. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** What tinyglobby makes of a pattern by default: a folder name matches everything under it. */
function expand(pattern: string): string[] {
  const p = pattern.endsWith('/') ? pattern.slice(0, -1) : pattern;
  return p.endsWith('*') ? [p] : [p, `${p}/**`];
}

/** Files hashed at once: overlaps file-system latency without flooding the worker. */
const HASH_CONCURRENCY = 8;

/**
 * Size and sha256 of a regular file the index holds or is about to hold; read only when its content was
 * never hashed before. Without `blob` (changed since git last indexed it) it is read, and remembered by
 * the blob id of what was read.
 */
async function describeIndexed(
  workspace: string,
  rel: string,
  blob: string | undefined,
): Promise<ArtifactFile> {
  const known = blob ? knownHash(blob) : undefined;
  if (known) return { path: rel, size: known.size, sha256: known.sha256 };
  const h = await hashFile(path.join(workspace, rel));
  rememberHash(blob ?? h.blob, h.blob, h.sha256, h.size);
  return { path: rel, size: h.size, sha256: h.sha256 };
}

/**
 * Matches each artifact pattern against the workspace's files as the shadow index lists them (dot files
 * included; `.orchestrator/` and `.git` never; symbolic links never followed or matched), and checks
 * `min_count`. Listing stages the work tree (initialising the shadow repository if needed), so a file
 * unchanged since an earlier listing is neither re-read nor re-hashed. A pattern that escapes the
 * workspace is reported as an error and not searched; so is one whose folder is a link leading out of it.
 * Patterns are taken as `unknown` shapes on purpose: a bad one is a finding about the phase, not a crash.
 */
export async function validateArtifacts(args: {
  workspace: string;
  artifacts: readonly { pattern: string; min_count?: number }[];
  /** The workspace as the caller just staged and listed it (checkpointPhase); default: list it here. */
  listing?: WorkspaceListing;
}): Promise<ArtifactValidation> {
  const workspace = path.resolve(args.workspace);
  const realRoot = await fs.realpath(workspace);
  const errors: string[] = [];
  const specs: ArtifactSpec[] = [];
  for (const raw of args.artifacts) {
    const spec = ArtifactSpecSchema.safeParse(raw);
    if (spec.success) specs.push(spec.data);
    else errors.push(`artifact "${raw.pattern}": ${spec.error.issues.map((i) => i.message).join('; ')}`);
  }
  const { entries } =
    args.listing ?? (specs.length ? await listWorkspace(workspace, { create: true }) : { entries: [] });
  const matched = new Map<string, WorkspaceEntry>();
  for (const { pattern, min_count } of specs) {
    for (const link of symlinksOnPrefix(pattern, entries)) {
      const real = await fs.realpath(path.join(workspace, link)).catch(() => undefined);
      if (real === undefined || !real.startsWith(realRoot + path.sep))
        errors.push(`artifact "${pattern}": "${link}" resolves outside the workspace`);
    }
    const isMatch = matcher(expand(pattern));
    let count = 0;
    for (const e of entries) {
      if (e.kind === 'symlink' || !isMatch(e.path)) continue;
      if (matched.has(e.path)) {
        count++;
        continue;
      }
      if (e.kind !== 'file') {
        // Not from the index: check where it really is before it is ever read.
        const full = path.join(workspace, e.path);
        const real = await fs.realpath(full);
        if (!real.startsWith(realRoot + path.sep)) {
          errors.push(`artifact "${pattern}": "${e.path}" resolves outside the workspace`);
          continue;
        }
        // Sockets and FIFOs are not artifacts (and reading a FIFO would block).
        if (!(await fs.stat(full)).isFile()) continue;
      }
      count++;
      matched.set(e.path, e);
    }
    if (count < min_count) {
      errors.push(
        `artifact "${pattern}": found ${count} file${count === 1 ? '' : 's'}, need at least ${min_count}`,
      );
    }
  }
  const sorted = [...matched.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const files = await mapLimit(sorted, HASH_CONCURRENCY, async (e) => {
    if (e.kind === 'file') return describeIndexed(workspace, e.path, e.blob);
    const full = path.join(workspace, e.path);
    return { path: e.path, size: (await fs.stat(full)).size, sha256: await sha256File(full) };
  });
  return { ok: errors.length === 0, files, errors };
}
