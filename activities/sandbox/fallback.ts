/**
 * The refusal `run_command` falls back to where no sandbox works: a command that names a path outside
 * its workspace (`../x`, `/tmp/x`, `/etc/passwd`, another run's folder, `~`) is not run at all.
 *
 * This is a heuristic, not a boundary: it reads the words of the argv and of any shell script in it, so
 * a command that builds a path at run time (`$(printf ..)`, a variable, a script file it wrote) gets
 * through. It stops the careless and the obvious; bubblewrap is what stops the determined, which is why
 * the worker and `run status` say loudly when it is missing.
 */
import path from 'node:path';

/** Paths outside the workspace that commands commonly need and that hold nothing. */
const HARMLESS = new Set(['/dev/null', '/dev/stdout', '/dev/stderr', '/dev/zero', '/dev/urandom']);

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Why `argv` may not run without a sandbox, or undefined when it names no path outside `workspace`.
 * `cwd` (inside the workspace) resolves relative words. The program itself (`argv[0]`) may be absolute.
 */
export function fallbackRefusal(argv: readonly string[], workspace: string, cwd: string): string | undefined {
  const root = path.resolve(workspace);
  for (const [i, arg] of argv.entries()) {
    // Words of the argument, and of a shell script in it: split on blanks, quotes and operators.
    const words = arg.split(/[\s;|&<>()`'"=,:]+/).filter(Boolean);
    for (const [j, w] of words.entries()) {
      if (i === 0 && j === 0) continue;
      const word = w.replace(/^\d*>+|^\d*<+/, '');
      if (HARMLESS.has(word)) continue;
      const named =
        word.startsWith('/') || word.startsWith('~') || /(^|\/)\.\.(\/|$)/.test(word) ? word : undefined;
      if (!named) continue;
      if (named.startsWith('~') || !inside(root, path.resolve(cwd, named)))
        return `without a sandbox (bubblewrap), run_command may not name a path outside the workspace: "${named}"`;
    }
  }
  return undefined;
}
