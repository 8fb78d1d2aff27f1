/**
 * Confinement of tool paths to a workspace. A model-chosen path is untrusted: it is checked lexically (no
 * `..` or absolute escape) and then by real path, so a symlink inside the workspace cannot lead outside it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

/** A tool call the workspace refuses; its message is shown to the model as the tool's error. */
export class WorkspaceEscapeError extends Error {
  override readonly name = 'WorkspaceEscapeError';
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Resolves `p` (relative to the workspace, or absolute inside it) to a real path inside the workspace. The
 * target itself need not exist (for writes); its nearest existing ancestor must resolve inside.
 * Throws {@link WorkspaceEscapeError} otherwise.
 */
export async function resolveInWorkspace(workspace: string, p: string): Promise<string> {
  const lexicalRoot = path.resolve(workspace);
  const target = path.resolve(lexicalRoot, p);
  const outside = () => new WorkspaceEscapeError(`path "${p}" is outside the workspace`);
  if (!isInside(lexicalRoot, target)) throw outside();

  const root = await fs.realpath(lexicalRoot);
  const missing: string[] = [];
  let probe = target;
  for (;;) {
    try {
      const real = await fs.realpath(probe);
      if (!isInside(root, real)) throw outside();
      return path.join(real, ...missing.reverse());
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // realpath fails with ENOENT for a dangling symlink too; writing through it could land anywhere.
      const isLink = await fs.lstat(probe).then(
        (s) => s.isSymbolicLink(),
        () => false,
      );
      if (isLink) throw new WorkspaceEscapeError(`path "${p}" goes through a dangling symlink`);
      missing.push(path.basename(probe));
      probe = path.dirname(probe);
    }
  }
}

/** The path of `real` relative to the workspace, for messages shown to the model. */
export async function relativeToWorkspace(workspace: string, real: string): Promise<string> {
  const root = await fs.realpath(path.resolve(workspace));
  return path.relative(root, real) || '.';
}
