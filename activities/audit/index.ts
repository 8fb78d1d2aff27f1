/**
 * The audit trail on disk: `<outputsDir>/<runId>/audit.jsonl`, one {@link AuditEntry} per line.
 *
 * Appends are idempotent by `seq`: an activity retried after it wrote (but before Temporal heard back)
 * skips the entries already in the file, and a line torn by a crash mid-write is cut off before appending.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { formatZodIssues } from '../../config/errors';
import type { Logger } from '../../src/logger';
import { redact } from '../../src/redact';
import { AuditEntrySchema, type AuditEntry } from '../../src/shared/audit';
import { SafeNameSchema } from '../../src/shared/ids';

export const AUDIT_FILE = 'audit.jsonl';

const AppendAuditInputSchema = z.object({
  outputsDir: z.string().startsWith('/', 'must be an absolute path'),
  runId: SafeNameSchema,
  entries: z.array(AuditEntrySchema),
});
export type AppendAuditInput = z.input<typeof AppendAuditInputSchema>;

export interface AppendAuditResult {
  file: string;
  appended: number;
  /** Entries whose seq was already in the file (or repeated within the batch). */
  skipped: number;
}

/** Path of a run's audit file. */
export function auditFilePath(outputsDir: string, runId: string): string {
  return path.join(outputsDir, runId, AUDIT_FILE);
}

/**
 * Reads a run's audit trail, ordered by seq. Lines that do not parse (a torn last line) are skipped.
 * Returns [] when the run has no audit file yet.
 */
export async function readAuditTrail(opts: { outputsDir: string; runId: string }): Promise<AuditEntry[]> {
  const { entries } = await readEntries(auditFilePath(opts.outputsDir, opts.runId));
  return entries.sort((a, b) => a.seq - b.seq);
}

async function readEntries(file: string): Promise<{ entries: AuditEntry[]; text: string; bad: number }> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], text: '', bad: 0 };
    throw err;
  }
  const entries: AuditEntry[] = [];
  let bad = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = AuditEntrySchema.safeParse(JSON.parse(line));
      if (parsed.success) entries.push(parsed.data);
      else bad++;
    } catch {
      bad++;
    }
  }
  return { entries, text, bad };
}

// Appends to one file are serialized within this worker (whichever activity appends: appendAudit, or
// checkpointPhase carrying a phase's entries): two concurrent calls must not both decide a seq is missing
// and write it twice.
const queues = new Map<string, Promise<unknown>>();

async function appendLocked(file: string, entries: AuditEntry[], logger: Logger): Promise<AppendAuditResult> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const { entries: existing, text, bad } = await readEntries(file);
  if (bad > 0) logger.warn({ file, bad }, 'audit file has unreadable lines; they are kept as they are');

  const seen = new Set(existing.map((e) => e.seq));
  const fresh: AuditEntry[] = [];
  for (const e of [...entries].sort((a, b) => a.seq - b.seq)) {
    if (seen.has(e.seq)) continue;
    seen.add(e.seq);
    fresh.push(e);
  }

  // A crash mid-write leaves a last line without its newline; cut it so the next line starts clean
  // (the retry re-sends that entry).
  if (text.length > 0 && !text.endsWith('\n')) {
    const keep = Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1), 'utf8');
    await fs.truncate(file, keep);
  }
  if (fresh.length > 0) {
    const handle = await fs.open(file, 'a');
    try {
      // Details come from requests and agents' results: a secret in them never reaches the file.
      await handle.write(fresh.map((e) => redact(JSON.stringify(e)) + '\n').join(''));
      // The activity reports success only once the lines are on disk.
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
  return { file, appended: fresh.length, skipped: entries.length - fresh.length };
}

/**
 * Appends validated entries to `<outputsDir>/<runId>/audit.jsonl`, skipping any seq already in the file
 * (idempotent, so an activity that carries them may be retried).
 */
export async function appendAuditEntries(
  opts: { outputsDir: string; runId: string; entries: AuditEntry[] },
  logger: Logger,
): Promise<AppendAuditResult> {
  const file = auditFilePath(opts.outputsDir, opts.runId);
  const prev = queues.get(file) ?? Promise.resolve();
  const run = prev.catch(() => undefined).then(() => appendLocked(file, opts.entries, logger));
  queues.set(file, run);
  try {
    const result = await run;
    logger.debug({ runId: opts.runId, appended: result.appended, skipped: result.skipped }, 'audit appended');
    return result;
  } finally {
    if (queues.get(file) === run) queues.delete(file);
  }
}

/** Builds the audit activities. */
export function createAuditActivities(deps: { logger: Logger }) {
  const { logger } = deps;

  return {
    /**
     * Appends entries to `<outputsDir>/<runId>/audit.jsonl`, skipping any seq already in the file.
     * Invalid input fails non-retryably (type `InvalidAuditInput`).
     */
    async appendAudit(input: AppendAuditInput): Promise<AppendAuditResult> {
      const parsed = AppendAuditInputSchema.safeParse(input);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: 'InvalidAuditInput',
          message: `appendAudit: ${formatZodIssues(parsed.error).join('; ')}`,
          nonRetryable: true,
        });
      }
      return appendAuditEntries(parsed.data, logger);
    },
  };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
