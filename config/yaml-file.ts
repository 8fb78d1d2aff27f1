/**
 * One YAML configuration file (a phase preset, an agent preset, a skill, a hierarchy policy): read,
 * parsed and validated against its schema, every problem a ConfigError line `<file>: <field>: <problem>`
 * (or `<file>:<line>:<col>: invalid YAML: …`), as the CLI prints it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, formatZodIssues } from './errors';
import { loadYaml } from './yaml';

/**
 * Renders zod issues as `path: message` lines. Beyond {@link formatZodIssues} it unpacks unions (a
 * "string or object" field reports the branch that matches the value's type) and names unknown keys.
 */
export function describeIssues(error: z.ZodError, prefix = ''): string[] {
  return formatZodIssues(new z.ZodError(flattenIssues(error.issues)), prefix);
}

function flattenIssues(issues: readonly z.core.$ZodIssue[], base: PropertyKey[] = []): z.core.$ZodIssue[] {
  return issues.flatMap((issue): z.core.$ZodIssue[] => {
    const at = [...base, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // A branch whose root type does not match the value is noise; keep the branch(es) that do.
      const fitting = issue.errors.filter(
        (branch) => !branch.some((b) => b.code === 'invalid_type' && b.path.length === 0),
      );
      if (fitting.length === 1 && fitting[0]) return flattenIssues(fitting[0], at);
      if (fitting.length === 0) {
        const expected = issue.errors.flatMap((b) =>
          b.flatMap((x) => (x.code === 'invalid_type' ? [x.expected] : [])),
        );
        const message = `expected ${[...new Set(expected)].join(' or ')}`;
        return [{ ...issue, path: at, message }];
      }
    }
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ ...issue, path: [...at, key], message: issue.message }));
    }
    return [{ ...issue, path: at }];
  });
}

/**
 * Per-parse messages: `is required` for a missing field, and `unknown key (expected one of: …)` so a typo
 * tells the user what was meant.
 */
export function configErrorMap(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_type' && issue.input === undefined) return 'is required';
  if (issue.code === 'unrecognized_keys') {
    const known = issue.inst instanceof z.ZodObject ? Object.keys(issue.inst.shape) : [];
    return known.length ? `unknown key (expected one of: ${known.join(', ')})` : 'unknown key';
  }
  return undefined;
}

/** Parses one YAML text into plain data, or throws ConfigError `source:line:col: invalid YAML: …`. */
export function parseYamlText(text: string, source: string): unknown {
  const doc = loadYaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    const where = pos ? `${source}:${pos.line}:${pos.col}` : source;
    const msg = (err.message.split('\n')[0] ?? err.message).replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${where}: invalid YAML: ${msg}`);
  }
  return doc.toJS() as unknown;
}

/**
 * Reads one YAML file: its absolute path and its data. Throws ConfigError `<file>: cannot read: <code>`
 * or the YAML error ({@link parseYamlText}).
 */
export function readYamlFile(file: string): { full: string; data: unknown } {
  const full = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch (err) {
    throw new ConfigError(`${full}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return { full, data: parseYamlText(text, full) };
}

/** `data` validated by `schema`, or a ConfigError with one `<source>: <field>: <problem>` line a problem. */
export function parseConfig<S extends z.ZodType>(schema: S, data: unknown, source: string): z.output<S> {
  const parsed = schema.safeParse(data, { error: configErrorMap });
  if (!parsed.success)
    throw new ConfigError(
      describeIssues(parsed.error)
        .map((l) => `${source}: ${l}`)
        .join('\n'),
    );
  return parsed.data;
}
