/** Artifact checks: do the files a phase promised exist, and what exactly are they (size, sha256)? */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { glob } from 'tinyglobby';
import { ArtifactSpecSchema } from '../../src/shared/spec';
import { STATE_DIR } from './git';

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

/**
 * Matches each artifact pattern in the workspace (dot files included; `.orchestrator/` and `.git`
 * excluded; symbolic links not followed while searching) and checks `min_count`. A pattern that escapes
 * the workspace is reported as an error and not searched; so is a match that resolves outside it, which
 * is never read.
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
  for (const raw of args.artifacts) {
    const spec = ArtifactSpecSchema.safeParse(raw);
    if (!spec.success) {
      errors.push(`artifact "${raw.pattern}": ${spec.error.issues.map((i) => i.message).join('; ')}`);
      continue;
    }
    const { pattern, min_count } = spec.data;
    const found = await glob(pattern, {
      cwd: workspace,
      dot: true,
      onlyFiles: true,
      followSymbolicLinks: false,
      ignore: [`${STATE_DIR}/**`, '**/.git/**'],
    });
    let count = 0;
    for (const rel of found) {
      const full = path.join(workspace, rel);
      // The glob's static prefix (`up/` in `up/**`) is entered even when it is a symlink, so check where
      // each match really is.
      const real = await fs.realpath(full);
      if (!real.startsWith(realRoot + path.sep)) {
        errors.push(`artifact "${pattern}": "${rel}" resolves outside the workspace`);
        continue;
      }
      const st = await fs.stat(full);
      // Sockets and FIFOs are not artifacts (and reading a FIFO would block).
      if (!st.isFile()) continue;
      count++;
      if (files.has(rel)) continue;
      files.set(rel, { path: rel, size: st.size, sha256: await sha256File(full) });
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
