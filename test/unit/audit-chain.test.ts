/**
 * The audit trail's tamper evidence and size bound, without a server: the hash chain, what
 * verifyAuditChain names when a line of audit.jsonl is changed, inserted or removed, and entries that stay
 * small whatever they are given. Also the plain-TypeScript SHA-256 the workflows use, against node:crypto.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_DETAILS_LIMIT,
  auditEntryHash,
  GENESIS,
  nextAuditEntry,
  verifyAuditChain,
  type AuditEntry,
  type AuditHead,
} from '../../src/shared/audit';
import { sha256Hex } from '../../src/shared/sha256';

const T = '2025-01-02T03:04:05.000Z';

function chain(n: number): { entries: AuditEntry[]; head: AuditHead } {
  let head: AuditHead = { count: 0, head: GENESIS };
  const entries: AuditEntry[] = [];
  for (let i = 1; i <= n; i++) {
    const next = nextAuditEntry(head, { time: T, actor: 'workflow', kind: 'phase', details: { n: i } });
    entries.push(next.entry);
    head = next.head;
  }
  return { entries, head };
}

const toLines = (entries: AuditEntry[]) => entries.map((e) => JSON.stringify(e));

describe('sha256Hex', () => {
  it('equals node:crypto on text of every kind and length', () => {
    const texts = [
      '',
      'abc',
      'é😀x',
      '\ud800 lone surrogate',
      'a'.repeat(55),
      'a'.repeat(64),
      'z'.repeat(100_000),
    ];
    for (let i = 0; i < 40; i++) texts.push(randomBytes(i * 5).toString('latin1'));
    for (const t of texts) {
      const want = createHash('sha256')
        .update(Buffer.from(new TextEncoder().encode(t)))
        .digest('hex');
      expect(sha256Hex(t)).toBe(want);
    }
  });
});

describe('verifyAuditChain', () => {
  it('says intact with the count and head of an untouched trail', () => {
    const { entries, head } = chain(5);
    expect(verifyAuditChain(toLines(entries), head)).toEqual({ ok: true, count: 5, head: head.head });
  });

  it('names an edited entry', () => {
    const { entries, head } = chain(5);
    const lines = toLines(entries);
    lines[2] = lines[2]!.replace('"n":3', '"n":33');
    expect(verifyAuditChain(lines, head)).toMatchObject({ ok: false, problem: 'changed', seq: 3, line: 3 });
  });

  it('names an entry whose hash was recomputed after an edit, by the next entry', () => {
    const { entries, head } = chain(5);
    const edited = { ...entries[1]!, details: { n: 'forged' } };
    edited.hash = auditEntryHash(edited);
    const lines = toLines([entries[0]!, edited, ...entries.slice(2)]);
    const v = verifyAuditChain(lines, head);
    expect(v).toMatchObject({ ok: false, problem: 'changed', seq: 2 });
  });

  it('names a removed entry, in the middle or at the end', () => {
    const { entries, head } = chain(5);
    expect(verifyAuditChain(toLines([...entries.slice(0, 2), ...entries.slice(3)]), head)).toMatchObject({
      ok: false,
      problem: 'removed',
      seq: 3,
    });
    const v = verifyAuditChain(toLines(entries.slice(0, 4)), head);
    expect(v).toMatchObject({ ok: false, problem: 'removed', seq: 5 });
    if (!v.ok) expect(v.message).toContain('entry 5 was removed');
  });

  it('names an inserted entry: a copied line or a made-up one', () => {
    const { entries, head } = chain(5);
    const copied = toLines(entries);
    copied.splice(3, 0, copied[1]!);
    expect(verifyAuditChain(copied, head)).toMatchObject({ ok: false, problem: 'inserted', line: 4 });
    const extra = nextAuditEntry(head, { time: T, actor: 'intruder', kind: 'approval', details: {} });
    expect(verifyAuditChain(toLines([...entries, extra.entry]), head)).toMatchObject({
      ok: false,
      problem: 'inserted',
      seq: 6,
    });
  });

  it('refuses lines that are not entries, and entries without a hash', () => {
    const { entries } = chain(2);
    const lines = toLines(entries);
    expect(verifyAuditChain([lines[0]!, 'not json', lines[1]!])).toMatchObject({
      ok: false,
      seq: 2,
      line: 2,
    });
    const { hash: _h, prev: _p, ...bare } = entries[0]!;
    expect(verifyAuditChain([JSON.stringify(bare)])).toMatchObject({ ok: false, problem: 'unchained' });
  });

  it('does not depend on the key order of a line', () => {
    const { entries, head } = chain(2);
    const reordered = entries.map((e) =>
      JSON.stringify({
        hash: e.hash,
        details: e.details,
        kind: e.kind,
        actor: e.actor,
        time: e.time,
        seq: e.seq,
        prev: e.prev,
      }),
    );
    expect(verifyAuditChain(reordered, head)).toMatchObject({ ok: true, count: 2 });
  });
});

describe('bounded entries', () => {
  const one = (details: Record<string, unknown>) =>
    nextAuditEntry({ count: 0, head: GENESIS }, { time: T, actor: 'operator', kind: 'rollback', details })
      .entry;

  it('cuts a 1.5 MB text with a note of its full length and digest', () => {
    const reason = 'r'.repeat(1_500_000);
    const e = one({ event: 'refused', request: { checkpoint: 'CP9', reason } });
    const json = JSON.stringify(e);
    expect(json.length).toBeLessThan(AUDIT_DETAILS_LIMIT + 1_000);
    expect(json).toContain(`[cut: 1500000 chars in full, sha256 ${sha256Hex(reason)}]`);
    expect(e.details.event).toBe('refused');
  });

  it('bounds wide, long and deep garbage of any shape', () => {
    const wide = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, 'v'.repeat(50)]));
    const long = Array.from({ length: 100_000 }, (_, i) => i);
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 500; i++) deep = { deep };
    for (const request of [wide, long, deep, 'x'.repeat(3_000_000), null, 42]) {
      const e = one({ event: 'refused', request });
      expect(JSON.stringify(e).length).toBeLessThan(AUDIT_DETAILS_LIMIT + 1_000);
      expect(e.hash).toBe(auditEntryHash(e));
    }
  });

  it('leaves small details exactly as they are', () => {
    const details = { gate: 'tests', passed: false, evidence: { output_tail: 'x'.repeat(1000) } };
    expect(one(details).details).toEqual(details);
  });
});
