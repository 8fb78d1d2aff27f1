/**
 * How every part of the project names what is wrong with an input that failed its zod schema: one
 * `path: message` per issue, indices as `[n]` (`phases[2].artifacts[0]: must be a relative path`).
 * Shared by config parsing, the CLI and the workflows' validators, so a message reads the same whichever
 * way in (a file, a flag, a signal, an update) the bad input came.
 *
 * Deterministic sandbox code: no imports.
 */

/** The parts of a zod issue (or error) this module reads; a `ZodError` is one. */
export interface IssueList {
  issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>;
}

/** The path of an issue, indices as `[n]`, after `prefix` (e.g. `phases[2].artifacts[0]`). */
function pathOf(path: ReadonlyArray<PropertyKey>, prefix: string): string {
  return path.reduce<string>(
    (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${String(seg)}` : String(seg)),
    prefix,
  );
}

/**
 * One line per issue: `path: message`, or the message alone for an issue of the whole input when no
 * `root` names it.
 */
export function formatZodIssues(err: IssueList, prefix = '', root?: string): string[] {
  return err.issues.map((issue) => {
    const path = pathOf(issue.path, prefix) || root;
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}

/** The issues on one line, `; `-separated, an issue of the whole input named `root`. */
export function zodIssueText(err: IssueList, root = 'input'): string {
  return formatZodIssues(err, '', root).join('; ');
}
