/**
 * Reading and verifying a run's audit trail from a client (project and team runs alike).
 *
 * The file `outputs/<run>/audit.jsonl` holds every entry written; the workflow holds the ones not written
 * yet (query `audit`, a page at a time). `--verify` checks the file's hash chain and then compares it with
 * what the run itself recorded, from the most trustworthy source available:
 *   1. the workflow (query `auditHead` and the entries it holds), when a worker answers and the run has
 *      not completed (a completed run's history knows every entry: see {@link liveAudit});
 *   2. the server's history: the entries (with their hashes) ride in the inputs of `appendAudit`, of
 *      `checkpointPhase` (a phase's entries) and of `updateRunManifest` (a completed run's last ones,
 *      patch `run-end-carries-audit`), and a continue-as-new carry holds the head; this needs no worker;
 *   3. the run manifest's `audit` head (a file like audit.jsonl itself, so the weakest).
 * It names the first entry that was changed, inserted or removed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { AuditEntrySchema, verifyAuditChain, type AuditEntry, type AuditHeadStatus } from './shared/audit';
import { auditHeadQuery, auditQuery } from './shared/messages';

export const AUDIT_FILE = 'audit.jsonl';
/** How long a query may wait for a worker before the history is used instead. */
const QUERY_WAIT_MS = 5_000;

/** What the server's history says about a run's trail. */
export interface HistoryAudit {
  outputsDir: string;
  /** Hashes by seq of every entry the latest execution handed to an activity (and the carried head). */
  known: Map<number, string>;
  /** Entries certainly written: those of completed activities that carried them (and before the carry). */
  written: number;
}

/** The parts of a history event this module reads. */
export interface RawEvent {
  eventId?: unknown;
  workflowExecutionStartedEventAttributes?: { input?: { payloads?: unknown[] | null } | null } | null;
  activityTaskScheduledEventAttributes?: {
    activityType?: { name?: string | null } | null;
    input?: { payloads?: unknown[] | null } | null;
  } | null;
  activityTaskCompletedEventAttributes?: { scheduledEventId?: unknown } | null;
}

function decode(payload: unknown): unknown {
  try {
    return defaultPayloadConverter.fromPayload(
      payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0],
    );
  } catch {
    return undefined;
  }
}

/**
 * The activities whose input carries audit entries, and the field that holds them. Every entry the
 * workflow writes rides in one of these: a history that showed only `appendAudit` would miss a completed
 * run's last entries, and `--verify` without a worker would not see the file lose them.
 */
const AUDIT_CARRIERS: Readonly<Record<string, string>> = {
  appendAudit: 'entries',
  checkpointPhase: 'audit',
  updateRunManifest: 'auditEntries',
};

/** Reads the latest execution's history for the run's outputs folder and the audit entries it carries. */
export async function historyAudit(client: Client, runId: string): Promise<HistoryAudit> {
  const history = await client.workflow.getHandle(runId).fetchHistory();
  return auditFromEvents(runId, history.events ?? []);
}

/** {@link historyAudit} from the events themselves (exported for tests). */
export function auditFromEvents(runId: string, events: readonly RawEvent[]): HistoryAudit {
  const start = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
  const input = decode(start[0]) as { outputsDir?: unknown } | undefined;
  if (typeof input?.outputsDir !== 'string') throw new Error(`run ${runId} has no outputsDir in its input`);
  const known = new Map<number, string>();
  let written = 0;
  const carry = decode(start[1]) as
    { audit?: { lastSeq?: unknown; head?: unknown; pending?: unknown[] } } | undefined;
  const c = carry?.audit;
  if (c && typeof c.lastSeq === 'number' && typeof c.head === 'string') {
    known.set(c.lastSeq, c.head);
    written = c.lastSeq - (Array.isArray(c.pending) ? c.pending.length : 0);
  }
  const scheduled = new Map<string, number>();
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    const field = AUDIT_CARRIERS[s?.activityType?.name ?? ''];
    if (s && field) {
      const arg = decode(s.input?.payloads?.[0]) as Record<string, unknown> | undefined;
      const carried = arg?.[field];
      let last = 0;
      for (const raw of Array.isArray(carried) ? carried : []) {
        const entry = AuditEntrySchema.safeParse(raw);
        if (entry.success && entry.data.hash) {
          known.set(entry.data.seq, entry.data.hash);
          last = Math.max(last, entry.data.seq);
        }
      }
      if (last > 0) scheduled.set(String(e.eventId), last);
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const last = scheduled.get(String(done.scheduledEventId));
      if (last !== undefined) written = Math.max(written, last);
    }
  }
  return { outputsDir: input.outputsDir, known, written };
}

/**
 * Every entry the workflow holds in memory, page by page; undefined when no worker answers, or when the
 * run has completed. A completed run handed every entry it recorded to an activity before it completed
 * (the last ones ride with its manifest's write, a failed append's stay in that activity's input), so its
 * history knows each one's hash, and its workflow holds nothing more. Asking it would cost a replay of
 * its whole history on a worker per query (three queries took 5 s for a 1,000-entry trail), or, with no
 * worker, {@link QUERY_WAIT_MS} of waiting.
 */
export async function liveAudit(
  client: Client,
  runId: string,
): Promise<{ head: AuditHeadStatus; entries: AuditEntry[] } | undefined> {
  const handle = client.workflow.getHandle(runId);
  try {
    if ((await handle.describe()).status.name === 'COMPLETED') return undefined;
  } catch {
    return undefined; // no such run here: the queries below would fail the same way
  }
  // Without a worker a query waits for one: give up after a few seconds and use the history instead.
  const soon = <T>(fn: () => Promise<T>) => client.workflow.withDeadline(Date.now() + QUERY_WAIT_MS, fn);
  try {
    const head = await soon(() => handle.query(auditHeadQuery));
    const entries: AuditEntry[] = [];
    let after = 0;
    // Up to the head's count, not until an empty page: on a closed run every query replays its whole
    // history on the worker, and the empty page was one replay in three (a 1,000-entry trail: head, one
    // page, nothing). Entries recorded after the head was read are not wanted here: the callers read
    // audit.jsonl before asking, so every entry in the file is at or below the head.
    while (after < head.count) {
      const page = await soon(() => handle.query(auditQuery, { afterSeq: after, limit: 500 }));
      if (page.length === 0) break;
      entries.push(...page);
      after = page[page.length - 1]!.seq;
    }
    return { head, entries };
  } catch {
    return undefined;
  }
}

function fileLines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function parseLines(lines: string[]): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const r = AuditEntrySchema.safeParse(JSON.parse(line));
      if (r.success) out.push(r.data);
    } catch {
      // a torn or edited line: --verify names it
    }
  }
  return out;
}

/**
 * A run's whole trail: every entry of audit.jsonl, then the entries the workflow holds that the file does
 * not have yet (read through the paged `audit` query). Without a worker, the file alone.
 */
export async function readRunAudit(
  client: Client,
  runId: string,
): Promise<{ entries: AuditEntry[]; file: string; live: boolean }> {
  const { outputsDir } = await historyAudit(client, runId);
  const file = path.join(outputsDir, runId, AUDIT_FILE);
  const fromFile = parseLines(fileLines(file));
  const lastInFile = fromFile.reduce((m, e) => Math.max(m, e.seq), 0);
  const live = await liveAudit(client, runId);
  // Only what comes after the file: a line missing from the file must stay missing (--verify finds it).
  const later = (live?.entries ?? []).filter((e) => e.seq > lastInFile);
  return { entries: [...fromFile, ...later], file, live: live !== undefined };
}

export type AuditCheck =
  | { ok: true; count: number; head: string; file: string; against: string }
  | { ok: false; message: string; seq: number; file: string; against: string };

/**
 * Verifies a run's audit.jsonl (see the module doc). `ok` is "intact, N entries, head <digest>";
 * otherwise `message` names the first entry changed, inserted or removed.
 */
export async function verifyRunAudit(client: Client, runId: string): Promise<AuditCheck> {
  let hist: HistoryAudit | undefined;
  try {
    hist = await historyAudit(client, runId);
  } catch {
    hist = undefined;
  }
  const outputsDir = hist?.outputsDir;
  if (!outputsDir) throw new Error(`cannot find run ${runId}'s outputs folder in its history`);
  const file = path.join(outputsDir, runId, AUDIT_FILE);
  const lines = fileLines(file);

  const known = new Map<number, string>(hist?.known ?? []);
  let written = hist?.written ?? 0;
  const sources: string[] = [];
  if (hist && hist.known.size > 0) sources.push('history');
  const live = await liveAudit(client, runId);
  if (live) {
    sources.unshift('workflow');
    for (const e of live.entries) if (e.hash) known.set(e.seq, e.hash);
    known.set(live.head.count, live.head.head);
    known.set(live.head.flushed.count, live.head.flushed.head);
    written = Math.max(written, live.head.flushed.count);
  }
  const manifest = readManifestHead(path.join(outputsDir, runId, 'manifest.json'));
  if (manifest && !known.has(manifest.entries)) {
    known.set(manifest.entries, manifest.head);
    sources.push('manifest');
  }
  const against = sources.length
    ? sources.join(' + ')
    : 'the file alone (no worker, history or manifest head)';

  const chain = verifyAuditChain(lines);
  if (!chain.ok) return { ok: false, message: chain.message, seq: chain.seq, file, against };

  // The first entry whose hash differs from what the run recorded was changed (the chain was recomputed).
  const entries = parseLines(lines);
  for (const e of entries) {
    const want = known.get(e.seq);
    if (want !== undefined && want !== e.hash) {
      return {
        ok: false,
        message: `entry ${e.seq} was changed or replaced: the run recorded hash ${want}, the file has ${e.hash}`,
        seq: e.seq,
        file,
        against,
      };
    }
  }
  const count = chain.count;
  if (count < written) {
    return {
      ok: false,
      message: `entry ${count + 1} was removed: the file ends at entry ${count}, the run wrote ${written}`,
      seq: count + 1,
      file,
      against,
    };
  }
  const maxKnown = Math.max(0, ...known.keys());
  if (known.size > 0 && count > maxKnown) {
    return {
      ok: false,
      message: `entry ${maxKnown + 1} was inserted: the run recorded ${maxKnown} entries, the file has ${count}`,
      seq: maxKnown + 1,
      file,
      against,
    };
  }
  return { ok: true, count, head: chain.head, file, against };
}

function readManifestHead(file: string): { entries: number; head: string } | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as { audit?: { entries?: unknown; head?: unknown } };
    const a = m.audit;
    return typeof a?.entries === 'number' && typeof a.head === 'string'
      ? { entries: a.entries, head: a.head }
      : undefined;
  } catch {
    return undefined;
  }
}
