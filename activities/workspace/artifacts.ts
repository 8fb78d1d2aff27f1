/** Artifact checks: do the files a phase promised exist, and what exactly are they (size, sha256)? */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ArtifactSpecSchema, type ArtifactSpec } from '../../src/shared/spec';
import { hashFile, listWorkspace, LruMap, matcher, symlinksOnPrefix, type WorkspaceEntry } from './files';

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

/** sha256 and size by git blob id: content-addressed, so valid for any workspace and any phase. */
const HASH_BY_BLOB = new LruMap(200_000);

/** What tinyglobby makes of a pattern by default: a folder name matches everything under it. */
function expand(pattern: string): string[] {
  const p = pattern.endsWith('/') ? pattern.slice(0, -1) : pattern;
  return p.endsWith('*') ? [p] : [p, `${p}/**`];
}

/** Size and sha256 of an indexed regular file; read only when its content was never hashed before. */
async function describeIndexed(workspace: string, rel: string, blob: string): Promise<ArtifactFile> {
  const known = HASH_BY_BLOB.get(blob);
  if (known !== undefined) {
    const [sha256, size] = known.split(':');
    return { path: rel, size: Number(size), sha256: sha256! };
  }
  const h = await hashFile(path.join(workspace, rel));
  // Cached only when the bytes read are the bytes git indexed (the file did not change meanwhile).
  if (h.blob === blob) HASH_BY_BLOB.set(blob, `${h.sha256}:${h.size}`);
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
}): Promise<ArtifactValidation> {
  const workspace = path.resolve(args.workspace);
  const realRoot = await fs.realpath(workspace);
  const errors: string[] = [];
  const files = new Map<string, ArtifactFile>();
  const specs: ArtifactSpec[] = [];
  for (const raw of args.artifacts) {
    const spec = ArtifactSpecSchema.safeParse(raw);
    if (spec.success) specs.push(spec.data);
    else errors.push(`artifact "${raw.pattern}": ${spec.error.issues.map((i) => i.message).join('; ')}`);
  }
  const { entries } = specs.length
    ? await listWorkspace(workspace, { create: true })
    : { entries: [] as WorkspaceEntry[] };
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
      if (files.has(e.path)) {
        count++;
        continue;
      }
      if (e.kind === 'file' && e.blob) {
        files.set(e.path, await describeIndexed(workspace, e.path, e.blob));
        count++;
        continue;
      }
      // Not from the index (inside a nested repository): check where it really is before reading.
      const full = path.join(workspace, e.path);
      const real = await fs.realpath(full);
      if (!real.startsWith(realRoot + path.sep)) {
        errors.push(`artifact "${pattern}": "${e.path}" resolves outside the workspace`);
        continue;
      }
      const st = await fs.stat(full);
      // Sockets and FIFOs are not artifacts (and reading a FIFO would block).
      if (!st.isFile()) continue;
      count++;
      files.set(e.path, { path: e.path, size: st.size, sha256: await sha256File(full) });
    }
    if (count < min_count) {
      errors.push(
        `artifact "${pattern}": found ${count} file${count === 1 ? '' : 's'}, need at least ${min_count}`,
      );
    }
  }
  return {
    ok: errors.length === 0,
    files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    errors,
  };
}
