/** How a failure reaches the user: one line and an exit code, never a stack trace for their mistakes. */
import { ZodError } from 'zod';
import { ConfigError, formatZodIssues } from '../../config/errors';
import { RunInputTooLargeError } from '../run-input-size';
import { WorkspacePathError } from '../workspace-path';
import { CliError } from './context';

/** Turns any error into a one-line message and an exit code. */
export function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof ConfigError) return { message: err.message, code: 2 };
  if (err instanceof CliError) return { message: err.message, code: err.exitCode };
  if (err instanceof WorkspacePathError || err instanceof RunInputTooLargeError)
    return { message: err.message, code: 2 };
  if (err instanceof ZodError) return { message: formatZodIssues(err).join('; '), code: 2 };
  if (err instanceof Error) return { message: err.message, code: 1 };
  return { message: String(err), code: 1 };
}
