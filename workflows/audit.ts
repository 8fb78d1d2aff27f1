/**
 * The audit trail as a workflow keeps it: entries are numbered and timed in workflow code (deterministic),
 * the last {@link AUDIT_MEMORY} stay in memory for the `audit` query, and batches are appended to
 * `outputs/<run>/audit.jsonl` by the `appendAudit` activity (idempotent by seq) when the workflow calls
 * {@link AuditTrail.flush} — at phase boundaries, before pausing, before the run ends or continues-as-new.
 * Unflushed entries are workflow state: a crash loses none of them, replay rebuilds them.
 */
import { CancellationScope, log, patched, proxyActivities } from '@temporalio/workflow';
import { retryPolicy } from '../src/shared/failures';
import type { Activities } from '../activities';
import { nextAuditEntry, type AuditEntry, type AuditKind } from '../src/shared/audit';

/** Entries kept in memory (and across continue-as-new) for the `audit` query. */
export const AUDIT_MEMORY = 200;
/** Upper bound on the JSON size of the entries carried across continue-as-new (payloads are capped at 2 MB). */
const CARRY_BYTES = 256 * 1024;
/** Runs recorded before the audit trail existed never call `appendAudit`; replaying them must not either. */
export const AUDIT_PATCH = 'audit-trail';

const activities = proxyActivities<Pick<Activities, 'appendAudit'>>({
  startToCloseTimeout: '1 minute',
  retry: retryPolicy(),
});

/** What a workflow carries across continue-as-new. */
export interface AuditCarry {
  lastSeq: number;
  recent: AuditEntry[];
  /** Entries recorded but not yet appended to the file (normally none: flush before continuing). */
  pending?: AuditEntry[];
}

export interface AuditTrail {
  /** Records an entry (kept in memory; written by the next {@link flush}). `actor` defaults to `workflow`. */
  record(kind: AuditKind, details: Record<string, unknown>, actor?: string): AuditEntry;
  /** The last entries, oldest first. */
  recent(): AuditEntry[];
  /** Appends the entries recorded since the last flush to audit.jsonl; never cancelled half-way. */
  flush(): Promise<void>;
  /** State to hand to the next run after continue-as-new. */
  carry(): AuditCarry;
}

/**
 * Creates a workflow's audit trail. Call it once, early in the workflow function (it decides, with
 * `patched`, whether this execution writes the file).
 */
export function createAuditTrail(opts: {
  runId: string;
  outputsDir: string;
  carry?: AuditCarry;
  /** Default: write the file unless replaying a history recorded before the audit trail existed. */
  persist?: boolean;
}): AuditTrail {
  const persist = opts.persist ?? patched(AUDIT_PATCH);
  let lastSeq = opts.carry?.lastSeq ?? 0;
  const recent: AuditEntry[] = [...(opts.carry?.recent ?? [])];
  let pending: AuditEntry[] = [...(opts.carry?.pending ?? [])];

  return {
    record(kind, details, actor = 'workflow') {
      const next = nextAuditEntry(lastSeq, { time: new Date(), actor, kind, details });
      lastSeq = next.lastSeq;
      recent.push(next.entry);
      if (recent.length > AUDIT_MEMORY) recent.splice(0, recent.length - AUDIT_MEMORY);
      if (persist) pending.push(next.entry);
      return next.entry;
    },
    recent: () => recent,
    async flush() {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      try {
        await CancellationScope.nonCancellable(() =>
          activities.appendAudit({ outputsDir: opts.outputsDir, runId: opts.runId, entries: batch }),
        );
      } catch (err) {
        // The trail must not take the run down with it: keep the batch for the next flush.
        pending = [...batch, ...pending];
        log.warn('audit append failed; will retry at the next flush', {
          runId: opts.runId,
          error: String(err),
        });
      }
    },
    carry() {
      const kept: AuditEntry[] = [];
      let bytes = 0;
      for (let i = recent.length - 1; i >= 0; i--) {
        const e = recent[i]!;
        bytes += JSON.stringify(e).length;
        if (bytes > CARRY_BYTES) break;
        kept.unshift(e);
      }
      return { lastSeq, recent: kept, ...(pending.length ? { pending } : {}) };
    },
  };
}
