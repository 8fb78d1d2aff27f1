/**
 * Workspace folders given by a user (`--workspace`), checked and created before any run starts, so that a
 * bad path is one clear line in the terminal instead of a raw errno or a hang.
 *
 * Node's `mkdirSync(p, { recursive: true })` loops forever on some paths (`/proc/nope/ws`), so folders
 * are created one level at a time here.
 */
import fs from 'node:fs';
import path from 'node:path';

/** A workspace path that cannot be used; the message names the path and the reason. */
export class WorkspacePathError extends Error {
  override readonly name = 'WorkspacePathError';
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOENT: 'the parent folder does not accept new folders',
    ENOSPC: 'no space left on the device',
  };
  return (e.code && text[e.code]) ?? e.message;
}

/**
 * The folders from the root down to `dir` that do not exist yet, after checking that the deepest existing
 * one is a directory. Throws {@link WorkspacePathError} naming the file that is in the way.
 */
function missingFolders(what: string, dir: string): string[] {
  const missing: string[] = [];
  let cur = dir;
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = statOrUndefined(cur);
    } catch (err) {
      throw new WorkspacePathError(`${what} ${dir}: cannot read ${cur} (${reason(err)})`);
    }
    if (st) {
      if (!st.isDirectory()) {
        throw new WorkspacePathError(
          cur === dir
            ? `${what} ${dir} is a file, not a directory`
            : `${what} ${dir}: ${cur} is a file, not a directory`,
        );
      }
      return missing.reverse();
    }
    missing.push(cur);
    const parent = path.dirname(cur);
    if (parent === cur) return missing.reverse();
    cur = parent;
  }
}

/** Checks `dir` without creating anything: it must be a directory or creatable under a directory. */
export function checkWorkspacePath(dir: string, what = 'workspace'): string {
  const abs = path.resolve(dir);
  missingFolders(what, abs);
  return abs;
}

/** Resolves `dir` and creates it (and missing parents) as needed; returns the absolute path. */
export function prepareWorkspace(dir: string, what = 'workspace'): string {
  const abs = path.resolve(dir);
  for (const folder of missingFolders(what, abs)) {
    try {
      fs.mkdirSync(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && fs.statSync(folder).isDirectory()) continue;
      throw new WorkspacePathError(`${what} ${abs}: cannot create ${folder} (${reason(err)})`);
    }
  }
  return abs;
}

/** Whether `inner` is `outer` or inside it. */
export function isInside(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
