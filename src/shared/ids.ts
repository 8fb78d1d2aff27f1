/**
 * The one pattern every name that can become part of a file path or a workflow id must match: run ids,
 * team ids, agent names and ids, phase names and client names. Checked at every entry point (CLI flags,
 * workflow input, signals, updates, activity input) before anything touches the file system, so that
 * `../x`, `a/b`, a leading dot or a 10 kB id can never name a file outside `outputs/<run>/`.
 *
 * Deterministic sandbox code (zod only): workflows import it too.
 */
import { z } from 'zod';

/** Letters, digits, `-` and `_`, starting with a letter or digit: no `/`, no `.`, nothing to escape with. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
/** Longest accepted name. Names are joined into file ids (`<phase>-<agent>`), which must stay short. */
export const NAME_MAX = 64;
/** Longest id built from names (e.g. `<phase>-<agent>`), as activities accept it. */
export const FILE_ID_MAX = 2 * NAME_MAX + 1;

const PATTERN_MESSAGE = 'must be letters, digits, - or _, starting with a letter or digit';

/** A run id, team id, agent name or id, phase name or client name. */
export const SafeNameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(NAME_MAX, `must be at most ${NAME_MAX} characters`)
  .regex(NAME_PATTERN, PATTERN_MESSAGE);

/** A file id an activity gets: names joined with `-`; the same pattern, a longer bound. */
export const FileIdSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(FILE_ID_MAX, `must be at most ${FILE_ID_MAX} characters`)
  .regex(NAME_PATTERN, PATTERN_MESSAGE);

/** What is wrong with `value` as a name, or undefined when it is fine. */
export function nameProblem(value: unknown, max = NAME_MAX): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > max) return `must be at most ${max} characters (got ${value.length})`;
  if (!NAME_PATTERN.test(value)) return PATTERN_MESSAGE;
  return undefined;
}

/** Shows an untrusted value in a one-line message without echoing a megabyte of it. */
export function shown(value: unknown): string {
  const s = typeof value === 'string' ? value : String(value);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/**
 * Throws an Error naming the field when `value` is not a safe name, e.g.
 * `run id "../bad/X": must be letters, digits, - or _, starting with a letter or digit`.
 */
export function assertSafeName(kind: string, value: unknown, max = NAME_MAX): string {
  const problem = nameProblem(value, max);
  if (problem) throw new Error(`${kind} ${shown(value)}: ${problem}`);
  return value as string;
}
