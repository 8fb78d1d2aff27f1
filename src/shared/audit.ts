/**
 * The audit trail's entry format. Workflows build entries (with their deterministic clock and a sequence
 * number they own) and hand them to the `appendAudit` activity, which writes `<outputsDir>/<runId>/audit.jsonl`.
 * The sequence number is the idempotency key: an activity retry never duplicates a line.
 *
 * Deterministic sandbox code: imports only zod.
 */
import { z } from 'zod';

export const AuditKindSchema = z.enum([
  'checkpoint',
  'rollback',
  'spawn',
  'spawn_refused',
  'gate',
  'budget',
  'approval',
  'phase',
  'run',
]);
export type AuditKind = z.infer<typeof AuditKindSchema>;

export const AuditEntrySchema = z.object({
  /** Monotonic per run, starting at 1; unique within a run's audit file. */
  seq: z.number().int().positive(),
  /** ISO-8601 time from the workflow's deterministic clock. */
  time: z.iso.datetime({ offset: true }),
  /** Who caused the event: `workflow`, an agent id, `user:<name>`, `cli`… */
  actor: z.string().min(1),
  kind: AuditKindSchema,
  details: z.record(z.string(), z.unknown()).default({}),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/**
 * Builds a valid entry; `time` may be a Date (e.g. `new Date()` inside a workflow, which is deterministic
 * there). Throws a ZodError on invalid input.
 */
export function auditEntry(input: {
  seq: number;
  time: Date | string;
  actor: string;
  kind: AuditKind;
  details?: Record<string, unknown>;
}): AuditEntry {
  return AuditEntrySchema.parse({
    ...input,
    time: input.time instanceof Date ? input.time.toISOString() : input.time,
  });
}

/**
 * Numbers the next entry from the last sequence number the workflow keeps in its state (and carries
 * across continue-as-new); returns the entry and the new last sequence number.
 */
export function nextAuditEntry(
  lastSeq: number,
  input: Omit<Parameters<typeof auditEntry>[0], 'seq'>,
): { entry: AuditEntry; lastSeq: number } {
  const seq = lastSeq + 1;
  return { entry: auditEntry({ ...input, seq }), lastSeq: seq };
}
