import { type ZodError } from 'zod';

/**
 * A user-facing configuration problem. The CLI prints `message` on one line and exits 2; no stack trace.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Renders zod issues as `path: message` lines, e.g. `phases[2].artifacts[0]: must be a relative path …`. */
export function formatZodIssues(err: ZodError, prefix = ''): string[] {
  return err.issues.map((issue) => {
    const path = issue.path.reduce<string>(
      (acc, seg) =>
        typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${String(seg)}` : String(seg),
      prefix,
    );
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}
