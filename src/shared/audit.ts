/**
 * The audit trail's entry format. Workflows build entries (with their deterministic clock and a sequence
 * number they own) and hand them to the `appendAudit` activity, which writes `<outputsDir>/<runId>/audit.jsonl`.
 * The sequence number is the idempotency key: an activity retry never duplicates a line.
 *
 * Tamper evidence: every entry carries `prev`, the hash of the entry before it (the first entry's is
 * {@link GENESIS}), and its own `hash`, the SHA-256 of its canonical JSON without `hash`. The workflow
 * keeps the head (count and hash of the last entry) in its state, its continue-as-new carry and the run
 * manifest, so a changed, inserted or removed line of audit.jsonl is found by {@link verifyAuditChain}.
 *
 * Bounded size: whatever a workflow records (a 1.5 MB rollback reason, a garbage signal) goes through
 * {@link boundDetails}, so one entry stays far below Temporal's payload limit.
 *
 * Deterministic sandbox code: imports only zod and src/shared/.
 */
import { z } from 'zod';
import { sha256Hex } from './sha256';

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
  /** A request that claimed an identity it could not prove (a borrowed agent id, a forged capability). */
  'spoof_attempt',
  /** Governance decisions taken before the run: a non-mandatory gate switched off by the intake. */
  'governance',
  /** A task an agent marked done (with proof of its identity). */
  'task',
  /** An agent called a tool its `allowed_tools` does not list; it got an error and the tool never ran. */
  'tool_refused',
  /** Where the run's workspace lives: the host it was placed on, and a move off a lost host. */
  'host',
]);
export type AuditKind = z.infer<typeof AuditKindSchema>;

const HashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 hex digest');

export const AuditEntrySchema = z.object({
  /** Monotonic per run, starting at 1; unique within a run's audit file. */
  seq: z.number().int().positive(),
  /** ISO-8601 time from the workflow's deterministic clock. */
  time: z.iso.datetime({ offset: true }),
  /** Who caused the event: `workflow`, an agent id, `operator`… */
  actor: z.string().min(1),
  kind: AuditKindSchema,
  details: z.record(z.string(), z.unknown()).default({}),
  /** Hash of the previous entry ({@link GENESIS} for the first). Absent only in trails older than the chain. */
  prev: HashSchema.optional(),
  /** SHA-256 of this entry's canonical JSON without `hash` ({@link auditEntryHash}). */
  hash: HashSchema.optional(),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/** The `prev` of a run's first entry. */
export const GENESIS = '0'.repeat(64);

/** Where a trail stands: how many entries it has and the hash of the last one. */
export interface AuditHead {
  count: number;
  head: string;
}

/** What query `auditHead` answers: every entry recorded, and the part already appended to audit.jsonl. */
export interface AuditHeadStatus extends AuditHead {
  flushed: AuditHead;
}

/** Longest string kept whole in an entry; longer ones are cut with their length and digest. */
export const AUDIT_STRING_LIMIT = 2_000;
/** Largest JSON (characters) of an entry's details; larger details are replaced by a cut summary. */
export const AUDIT_DETAILS_LIMIT = 16_000;
const MAX_ITEMS = 100;
const MAX_DEPTH = 8;

/** A long text as an audit entry keeps it: its start, and a note of its full length and digest. */
export function cutText(text: string, limit = AUDIT_STRING_LIMIT): string {
  if (text.length <= limit) return text;
  return `${text.slice(0, limit)}… [cut: ${text.length} chars in full, sha256 ${sha256Hex(text)}]`;
}

function boundValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return cutText(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_DEPTH) return `[cut: nested deeper than ${MAX_DEPTH} levels]`;
  if (Array.isArray(v)) {
    const kept = v.slice(0, MAX_ITEMS).map((x) => boundValue(x, depth + 1));
    if (v.length > MAX_ITEMS) kept.push(`[cut: ${v.length} items in full]`);
    return kept;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries.slice(0, MAX_ITEMS)) out[cutText(k, 200)] = boundValue(x, depth + 1);
  if (entries.length > MAX_ITEMS) out['…'] = `[cut: ${entries.length} keys in full]`;
  return out;
}

/**
 * Details as an audit entry may hold them: plain JSON (what survives a payload round trip), long strings
 * cut, big arrays and objects cut, and at most {@link AUDIT_DETAILS_LIMIT} characters of JSON in all.
 */
export function boundDetails(details: Record<string, unknown>): Record<string, unknown> {
  let json: string;
  try {
    json = JSON.stringify(details) ?? '{}';
  } catch (err) {
    return { unserializable: String(err).slice(0, 200) };
  }
  const plain = JSON.parse(json) as Record<string, unknown>;
  if (json.length <= AUDIT_DETAILS_LIMIT) return plain;
  const bounded = boundValue(plain, 0) as Record<string, unknown>;
  if (JSON.stringify(bounded).length <= AUDIT_DETAILS_LIMIT) return bounded;
  return {
    cut: `details of ${json.length} chars in full, sha256 ${sha256Hex(json)}`,
    preview: json.slice(0, AUDIT_STRING_LIMIT),
  };
}

/** JSON with object keys sorted at every level (undefined members left out, as JSON.stringify does). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** The hash an entry must carry: SHA-256 of its canonical JSON without `hash`. */
export function auditEntryHash(entry: Omit<AuditEntry, 'hash'> & { hash?: string }): string {
  const { hash: _hash, ...rest } = entry;
  return sha256Hex(canonicalJson(rest));
}

/**
 * Builds a valid entry; `time` may be a Date (e.g. `new Date()` inside a workflow, which is deterministic
 * there). With `prev`, the entry is chained (it gets `prev` and `hash`). Details are bounded
 * ({@link boundDetails}). Throws a ZodError on invalid input.
 */
export function auditEntry(input: {
  seq: number;
  time: Date | string;
  actor: string;
  kind: AuditKind;
  details?: Record<string, unknown>;
  prev?: string;
}): AuditEntry {
  const entry = AuditEntrySchema.parse({
    seq: input.seq,
    time: input.time instanceof Date ? input.time.toISOString() : input.time,
    actor: cutText(input.actor, 200),
    kind: input.kind,
    details: boundDetails(input.details ?? {}),
    ...(input.prev !== undefined ? { prev: input.prev } : {}),
  });
  return input.prev === undefined ? entry : { ...entry, hash: auditEntryHash(entry) };
}

/**
 * Numbers and chains the next entry after `last` (which the workflow keeps in its state and carries across
 * continue-as-new); returns the entry and the new head.
 */
export function nextAuditEntry(
  last: AuditHead,
  input: Omit<Parameters<typeof auditEntry>[0], 'seq' | 'prev'>,
): { entry: AuditEntry; head: AuditHead } {
  const entry = auditEntry({ ...input, seq: last.count + 1, prev: last.head });
  return { entry, head: { count: entry.seq, head: entry.hash! } };
}

/** The outcome of {@link verifyAuditChain}. */
export type AuditVerdict =
  | { ok: true; count: number; head: string }
  | {
      ok: false;
      /** What happened to the first bad entry. */
      problem: 'changed' | 'inserted' | 'removed' | 'unchained';
      /** The entry (seq) concerned. */
      seq: number;
      /** 1-based line of audit.jsonl where it shows (0 when past the end). */
      line: number;
      message: string;
    };

/**
 * Checks the lines of an audit.jsonl: every line an entry, numbered 1, 2, 3…, each carrying the hash of
 * the one before and its own correct hash, and (with `expected`, the head the run recorded) ending where
 * the run says it ends. Names the first entry that was changed, inserted or removed.
 */
export function verifyAuditChain(lines: readonly string[], expected?: AuditHead): AuditVerdict {
  let count = 0;
  let head = GENESIS;
  const bad = (
    problem: Exclude<AuditVerdict, { ok: true }>['problem'],
    seq: number,
    line: number,
    message: string,
  ) => ({ ok: false, problem, seq, line, message }) as const;
  let lineNo = 0;
  for (const raw of lines) {
    lineNo++;
    if (!raw.trim()) continue;
    const want = count + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return bad('changed', want, lineNo, `entry ${want} was changed: line ${lineNo} is not JSON`);
    }
    const r = AuditEntrySchema.safeParse(parsed);
    if (!r.success) {
      return bad('changed', want, lineNo, `entry ${want} was changed: line ${lineNo} is not an audit entry`);
    }
    const e = r.data;
    if (e.hash === undefined || e.prev === undefined) {
      return bad(
        'unchained',
        e.seq,
        lineNo,
        `entry ${e.seq} (line ${lineNo}) has no hash: it predates the audit chain or was added by hand`,
      );
    }
    if (e.seq < want) {
      return bad(
        'inserted',
        e.seq,
        lineNo,
        `an entry was inserted at line ${lineNo}: seq ${e.seq} repeats an earlier entry (expected ${want})`,
      );
    }
    if (e.seq > want) {
      return bad(
        'removed',
        want,
        lineNo,
        `entry ${want} was removed: line ${lineNo} holds entry ${e.seq}, entries ${want}..${e.seq - 1} are missing`,
      );
    }
    if (auditEntryHash(e) !== e.hash) {
      return bad(
        'changed',
        e.seq,
        lineNo,
        `entry ${e.seq} was changed (line ${lineNo}): its content no longer matches its hash`,
      );
    }
    if (e.prev !== head) {
      return count === 0
        ? bad(
            'inserted',
            e.seq,
            lineNo,
            `entry ${e.seq} (line ${lineNo}) does not start the chain: it was inserted or the trail was cut`,
          )
        : bad(
            'changed',
            count,
            lineNo - 1,
            `entry ${count} was changed or replaced: entry ${e.seq} (line ${lineNo}) recorded a different hash for it`,
          );
    }
    count = e.seq;
    head = e.hash;
  }
  if (expected) {
    if (count < expected.count) {
      return bad(
        'removed',
        count + 1,
        0,
        `entry ${count + 1} was removed: the file ends at entry ${count}, the run recorded ${expected.count}`,
      );
    }
    if (count > expected.count) {
      return bad(
        'inserted',
        expected.count + 1,
        0,
        `entry ${expected.count + 1} was inserted: the run recorded ${expected.count} entries, the file has ${count}`,
      );
    }
    if (head !== expected.head) {
      return bad(
        'changed',
        count,
        0,
        `entry ${count} was changed or replaced: the run recorded head ${expected.head}`,
      );
    }
  }
  return { ok: true, count, head };
}
