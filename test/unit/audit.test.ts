import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { auditFilePath, createAuditActivities, readAuditTrail } from '../../activities/audit';
import { auditEntry, auditEntryHash, GENESIS, nextAuditEntry, type AuditEntry } from '../../src/shared/audit';

const logger = pino({ level: 'silent' });
const T = '2025-01-02T03:04:05.000Z';

function entries(from: number, to: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push(auditEntry({ seq, time: T, actor: 'workflow', kind: 'phase', details: { n: seq } }));
  }
  return out;
}

function lines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

describe('audit entries', () => {
  it('builds valid entries, numbers and chains them', () => {
    const first = nextAuditEntry(
      { count: 0, head: GENESIS },
      { time: new Date(T), actor: 'workflow', kind: 'gate', details: { id: 'tests' } },
    );
    expect(first.entry).toMatchObject({
      seq: 1,
      time: T,
      actor: 'workflow',
      kind: 'gate',
      details: { id: 'tests' },
      prev: GENESIS,
    });
    expect(first.entry.hash).toBe(auditEntryHash(first.entry));
    const second = nextAuditEntry(first.head, { time: T, actor: 'cli', kind: 'approval' });
    expect(second.entry.seq).toBe(2);
    expect(second.entry.prev).toBe(first.entry.hash);
    expect(second.entry.details).toEqual({});
  });

  it('rejects an unknown kind or a non-ISO time', () => {
    expect(() => auditEntry({ seq: 1, time: 'yesterday', actor: 'w', kind: 'run' })).toThrow();
    // @ts-expect-error: not a kind
    expect(() => auditEntry({ seq: 1, time: T, actor: 'w', kind: 'party' })).toThrow();
  });
});

describe('appendAudit', () => {
  let outputsDir: string;
  const audit = createAuditActivities({ logger });
  const appendAudit = (input: Parameters<typeof audit.appendAudit>[0]) => audit.appendAudit(input);
  beforeEach(() => {
    outputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-audit-'));
  });

  it('writes JSONL to <outputsDir>/<runId>/audit.jsonl', async () => {
    const r = await appendAudit({ outputsDir, runId: 'run-1', entries: entries(1, 3) });
    expect(r).toEqual({ file: path.join(outputsDir, 'run-1', 'audit.jsonl'), appended: 3, skipped: 0 });
    expect(lines(r.file).map((l) => (JSON.parse(l) as AuditEntry).seq)).toEqual([1, 2, 3]);
  });

  it('is idempotent by seq: a retried append does not duplicate lines', async () => {
    await appendAudit({ outputsDir, runId: 'r', entries: entries(1, 3) });
    const retry = await appendAudit({ outputsDir, runId: 'r', entries: entries(1, 3) });
    expect(retry).toMatchObject({ appended: 0, skipped: 3 });
    const overlap = await appendAudit({
      outputsDir,
      runId: 'r',
      entries: [...entries(2, 5), ...entries(5, 5)],
    });
    expect(overlap).toMatchObject({ appended: 2, skipped: 3 });
    expect((await readAuditTrail({ outputsDir, runId: 'r' })).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(lines(auditFilePath(outputsDir, 'r'))).toHaveLength(5);
  });

  it('concurrent appends of the same entries write each seq once', async () => {
    await Promise.all(
      [1, 2, 3, 4].map(() => appendAudit({ outputsDir, runId: 'c', entries: entries(1, 10) })),
    );
    expect(lines(auditFilePath(outputsDir, 'c'))).toHaveLength(10);
  });

  it('cuts a line torn by a crash before appending', async () => {
    const file = auditFilePath(outputsDir, 't');
    await appendAudit({ outputsDir, runId: 't', entries: entries(1, 1) });
    fs.appendFileSync(file, JSON.stringify(entries(2, 2)[0]).slice(0, 20)); // half of seq 2
    const r = await appendAudit({ outputsDir, runId: 't', entries: entries(2, 3) });
    expect(r.appended).toBe(2);
    const seqs = lines(file).map((l) => (JSON.parse(l) as AuditEntry).seq);
    expect(seqs).toEqual([1, 2, 3]);
  });

  it('refuses a runId that is not a single path segment, non-retryably', async () => {
    await expect(
      appendAudit({ outputsDir, runId: '../escape', entries: entries(1, 1) }),
    ).rejects.toMatchObject({
      type: 'InvalidAuditInput',
      nonRetryable: true,
    });
    expect(fs.existsSync(path.join(path.dirname(outputsDir), 'escape'))).toBe(false);
  });

  it('reads an absent trail as empty', async () => {
    expect(await readAuditTrail({ outputsDir, runId: 'none' })).toEqual([]);
  });
});
