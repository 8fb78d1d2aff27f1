/**
 * The audit trail as a workflow keeps it, for every workflow that has one (projectWorkflow, teamWorkflow):
 * entries are numbered, timed and hash-chained in workflow code (deterministic), the last
 * {@link AUDIT_MEMORY} stay in memory for the `audit` query (with every entry not yet written), and batches
 * are appended to `outputs/<run>/audit.jsonl` by the `appendAudit` activity (idempotent by seq) when the
 * workflow calls {@link AuditTrail.flush}, or in the background ({@link AuditTrail.background}).
 * Unflushed entries are workflow state: a crash loses none of them, replay rebuilds them.
 *
 * The head (count and hash of the last entry) is workflow state too, answered by query `auditHead` and
 * carried across continue-as-new instead of entries, so the carry stays small however long the run.
 */
import { CancellationScope, condition, log, patched, proxyActivities } from '@temporalio/workflow';
import { retryPolicy, SHORT_ACTIVITY_TIMEOUT } from '../src/shared/failures';
import type { Activities } from '../activities';
import {
  GENESIS,
  nextAuditEntry,
  type AuditEntry,
  type AuditHead,
  type AuditHeadStatus,
  type AuditKind,
} from '../src/shared/audit';
import type { AuditPage, AuditPageRequest } from '../src/shared/messages';

/** Entries kept in memory (besides those not yet written) for the `audit` query. */
export const AUDIT_MEMORY = 200;
/** Most JSON characters one `appendAudit` call carries (payloads are capped at 2 MB). */
const BATCH_CHARS = 256 * 1024;
/** Most JSON characters one page of the `audit` query returns. */
const PAGE_CHARS = 512 * 1024;
/** Runs recorded before the audit trail existed never call `appendAudit`; replaying them must not either. */
export const AUDIT_PATCH = 'audit-trail';

const activities = proxyActivities<Pick<Activities, 'appendAudit'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});

/** What a workflow carries across continue-as-new: the head, never the entries already written. */
export interface AuditCarry {
  lastSeq: number;
  /** Hash of entry `lastSeq` (absent in carries written before the chain: the chain restarts there). */
  head?: string;
  /** Written by older versions; ignored. */
  recent?: AuditEntry[];
  /** Entries recorded but not yet appended to the file (normally none: flush before continuing). */
  pending?: AuditEntry[];
}

export interface AuditTrail {
  /** Records an entry (kept in memory; written by the next {@link flush}). `actor` defaults to `workflow`. */
  record(kind: AuditKind, details: Record<string, unknown>, actor?: string): AuditEntry;
  /** The last entries, oldest first. */
  recent(): AuditEntry[];
  /** A page of the entries in memory (query `audit`). */
  page(req?: AuditPageRequest): AuditPage;
  /** Count and hash of the last entry, and of the last one written (query `auditHead`). */
  head(): AuditHeadStatus;
  /** Appends the entries recorded since the last flush to audit.jsonl; never cancelled half-way. */
  flush(): Promise<void>;
  /**
   * The entries to write along with another activity's own work (one batch of what is pending, none when
   * the trail is not persisted), so that writing them costs no round trip of its own. Call
   * {@link written} once that activity succeeded; until then they stay pending.
   */
  ride(): AuditEntry[];
  /** Entries handed out by {@link ride} are in the file. */
  written(entries: readonly AuditEntry[]): void;
  /**
   * Writes entries in the background, gathering them for `window` so that a burst costs one activity.
   * `close()` writes what is left and ends the writer.
   */
  background(window: string): { close(): Promise<void> };
  /** State to hand to the next run after continue-as-new. */
  carry(): AuditCarry;
}

/**
 * Creates a workflow's audit trail. Call it once, early in the workflow function (it decides, with
 * `patched`, whether this execution writes the file, unless `persist` is given).
 */
export function createAuditTrail(opts: {
  runId: string;
  outputsDir: string;
  carry?: AuditCarry;
  /** Default: write the file unless replaying a history recorded before the audit trail existed. */
  persist?: boolean;
}): AuditTrail {
  const persist = opts.persist ?? patched(AUDIT_PATCH);
  const start: AuditHead = { count: opts.carry?.lastSeq ?? 0, head: opts.carry?.head ?? GENESIS };
  let last: AuditHead = start;
  let pending: AuditEntry[] = [...(opts.carry?.pending ?? [])];
  let flushed: AuditHead = pending.length
    ? { count: (pending[0]?.seq ?? 1) - 1, head: pending[0]?.prev ?? GENESIS }
    : start;
  const recent: AuditEntry[] = [...pending];

  /** The first entries of `from`, up to {@link BATCH_CHARS} of JSON (at least one). */
  function batchOf(from: readonly AuditEntry[]): AuditEntry[] {
    const batch: AuditEntry[] = [];
    let chars = 0;
    for (const e of from) {
      const size = JSON.stringify(e).length;
      if (batch.length > 0 && chars + size > BATCH_CHARS) break;
      batch.push(e);
      chars += size;
    }
    return batch;
  }

  /** Appends what is pending; false when an append failed (its entries stay pending). */
  async function append(): Promise<boolean> {
    // Only what is pending now: entries recorded while an append runs wait for the next flush (as they
    // always have: recorded histories replay only if the sequence of appends stays the same).
    let toSend = pending.length;
    while (toSend > 0) {
      const batch = batchOf(pending.slice(0, toSend));
      try {
        await CancellationScope.nonCancellable(() =>
          activities.appendAudit({ outputsDir: opts.outputsDir, runId: opts.runId, entries: batch }),
        );
      } catch (err) {
        // The trail must not take the run down with it: the batch stays pending for the next flush.
        log.warn('audit append failed; will retry at the next flush', {
          runId: opts.runId,
          error: String(err),
        });
        return false;
      }
      pending = pending.slice(batch.length);
      toSend -= batch.length;
      const lastWritten = batch[batch.length - 1]!;
      flushed = { count: lastWritten.seq, head: lastWritten.hash ?? flushed.head };
    }
    return true;
  }

  return {
    record(kind, details, actor = 'workflow') {
      const next = nextAuditEntry(last, { time: new Date(), actor, kind, details });
      last = next.head;
      recent.push(next.entry);
      if (recent.length > AUDIT_MEMORY) recent.splice(0, recent.length - AUDIT_MEMORY);
      if (persist) pending.push(next.entry);
      else flushed = last;
      return next.entry;
    },
    recent: () => recent,
    page(req) {
      // Queries come from any client: take only well-formed numbers from the request.
      const num = (v: unknown, dflt: number) => (typeof v === 'number' && Number.isFinite(v) ? v : dflt);
      const after = num(req?.afterSeq, 0);
      const limit = Math.max(1, Math.min(num(req?.limit, 500), 1000));
      const bySeq = new Map<number, AuditEntry>();
      for (const e of [...recent, ...pending]) if (e.seq > after) bySeq.set(e.seq, e);
      const all = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
      const entries: AuditEntry[] = [];
      let chars = 0;
      for (const e of all) {
        const size = JSON.stringify(e).length;
        if (entries.length >= limit || (entries.length > 0 && chars + size > PAGE_CHARS)) break;
        entries.push(e);
        chars += size;
      }
      const more = entries.length < all.length;
      return {
        entries,
        count: last.count,
        ...(more ? { nextAfterSeq: entries[entries.length - 1]!.seq } : {}),
      };
    },
    head: () => ({ ...last, flushed }),
    async flush() {
      await append();
    },
    ride: () => batchOf(pending),
    written(entries) {
      const lastWritten = entries[entries.length - 1];
      if (!lastWritten) return;
      // By seq, not by position: a flush may have written some of them meanwhile.
      pending = pending.filter((e) => e.seq > lastWritten.seq);
      if (lastWritten.seq > flushed.count)
        flushed = { count: lastWritten.seq, head: lastWritten.hash ?? flushed.head };
    },
    background(window) {
      let closed = false;
      const loop = (async () => {
        for (;;) {
          await condition(() => pending.length > 0 || closed);
          if (pending.length === 0) return;
          if (!closed) await condition(() => closed, window);
          // A failed append keeps its entries: wait a window before trying again (or give up once closed).
          if (!(await append())) {
            if (closed) return;
            await condition(() => closed, window);
          }
        }
      })();
      return {
        async close() {
          closed = true;
          await loop;
        },
      };
    },
    carry() {
      return { lastSeq: last.count, head: last.head, ...(pending.length ? { pending } : {}) };
    },
  };
}
