/**
 * A user-facing configuration problem. The CLI prints `message` on one line and exits 2; no stack trace.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Renders zod issues as `path: message` lines, e.g. `phases[2].artifacts[0]: must be a relative path …`. */
export { formatZodIssues } from '../src/shared/zod-issues';
