/**
 * Signal payloads as a workflow takes them. A signal cannot be refused to its sender, and anyone who can
 * signal a workflow may send anything: a handler that threw on a malformed payload would fail the
 * workflow task, which Temporal retries with the same payload, forever, stalling the run. So every
 * handler parses its payload with the schema defined beside the signal (src/shared) and drops what does
 * not parse, logging why.
 */
import { log } from '@temporalio/workflow';
import type { z } from 'zod';
import { zodIssueText } from '../src/shared/zod-issues';

/**
 * Malformed payloads ignored so far, by signal name: for sampling the log only. It decides no command, so
 * it may count across the executions that share the workflow thread's context and across replays, and it
 * holds one entry per signal name, however many payloads come.
 */
const ignored = new Map<string, number>();

/** The payload parsed by `schema`, or undefined (logged with `context`) when it does not parse. */
export function signalInput<S extends z.ZodTypeAny>(
  signal: string,
  schema: S,
  raw: unknown,
  context: Record<string, unknown> = {},
): z.output<S> | undefined {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  // A flood of bad payloads must not flood the log: the first few of each signal, then 1 in 100.
  const n = (ignored.get(signal) ?? 0) + 1;
  ignored.set(signal, n);
  if (n > 5 && n % 100 !== 0) return undefined;
  log.warn(`${signal} signal ignored: malformed payload`, {
    ...context,
    signal,
    problem: zodIssueText(parsed.error, 'payload').slice(0, 500),
    ignored: n,
  });
  return undefined;
}
