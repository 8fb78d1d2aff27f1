/**
 * `governance audit --verify` without a worker takes what the run wrote from its history (src/audit.ts):
 * every activity that carries audit entries must count, or a file that lost a completed run's last
 * entries (which ride with `updateRunManifest`) would pass as intact.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { auditFromEvents, liveAudit, type RawEvent } from '../../src/audit';
import { GENESIS, nextAuditEntry, type AuditEntry, type AuditHead } from '../../src/shared/audit';

function chain(n: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  let head: AuditHead = { count: 0, head: GENESIS };
  for (let i = 0; i < n; i++) {
    const next = nextAuditEntry(head, { time: '2026-12-01T00:00:00.000Z', actor: 'workflow', kind: 'phase' });
    out.push(next.entry);
    head = next.head;
  }
  return out;
}

const payload = (v: unknown) => defaultPayloadConverter.toPayload(v);

/** A started event, then each activity scheduled with `input` (and completed when `done`). */
function history(acts: { type: string; input: Record<string, unknown>; done: boolean }[]): RawEvent[] {
  const events: RawEvent[] = [
    {
      eventId: 1,
      workflowExecutionStartedEventAttributes: { input: { payloads: [payload({ outputsDir: '/out' })] } },
    },
  ];
  for (const a of acts) {
    const id = events.length + 1;
    events.push({
      eventId: id,
      activityTaskScheduledEventAttributes: {
        activityType: { name: a.type },
        input: { payloads: [payload(a.input)] },
      },
    });
    if (a.done)
      events.push({ eventId: id + 1, activityTaskCompletedEventAttributes: { scheduledEventId: id } });
  }
  return events;
}

describe("a run's audit entries in its history", () => {
  const e = chain(5);

  it('are read from appendAudit, checkpointPhase and updateRunManifest alike', () => {
    const h = auditFromEvents(
      'r',
      history([
        { type: 'appendAudit', input: { entries: e.slice(0, 2) }, done: true },
        { type: 'checkpointPhase', input: { audit: [e[2]] }, done: true },
        {
          type: 'updateRunManifest',
          input: { audit: { entries: 3, head: 'x' }, auditEntries: e.slice(3) },
          done: true,
        },
      ]),
    );
    expect(h.outputsDir).toBe('/out');
    expect(h.written).toBe(5);
    expect([...h.known.entries()]).toEqual(e.map((x) => [x.seq, x.hash]));
  });

  it('count as written only once the activity that carried them completed', () => {
    const h = auditFromEvents(
      'r',
      history([
        { type: 'checkpointPhase', input: { audit: e.slice(0, 3) }, done: true },
        { type: 'updateRunManifest', input: { auditEntries: e.slice(3) }, done: false },
      ]),
    );
    expect(h.written).toBe(3);
    expect(h.known.get(5)).toBe(e[4]!.hash);
  });

  it('ignore activities that carry none, and inputs that are not entries', () => {
    const h = auditFromEvents(
      'r',
      history([
        { type: 'scriptTurn', input: { entries: e }, done: true },
        { type: 'checkpointPhase', input: { audit: 'nope' }, done: true },
        { type: 'updateRunManifest', input: { auditEntries: [{ seq: 1 }] }, done: true },
      ]),
    );
    expect(h.written).toBe(0);
    expect(h.known.size).toBe(0);
  });
});

describe("a run's audit entries from its workflow (liveAudit)", () => {
  /** A client whose run holds `held` entries and reports `count` as its head; records the queries asked. */
  function fakeClient(count: number, held: AuditEntry[], pageSize: number, status = 'RUNNING') {
    const asked: string[] = [];
    const handle = {
      describe: () => Promise.resolve({ status: { name: status } }),
      query: (q: { name: string }, req?: { afterSeq?: number }): Promise<unknown> => {
        asked.push(q.name === 'audit' ? `audit>${req?.afterSeq ?? 0}` : q.name);
        if (q.name === 'auditHead')
          return Promise.resolve({ count, head: 'h', flushed: { count, head: 'h' } });
        return Promise.resolve(held.filter((e) => e.seq > (req?.afterSeq ?? 0)).slice(0, pageSize));
      },
    };
    const client = {
      workflow: { getHandle: () => handle, withDeadline: <T>(_: number, fn: () => Promise<T>) => fn() },
    } as unknown as Parameters<typeof liveAudit>[0];
    return { client, asked };
  }

  it('pages up to the head, without asking for the empty page after it (each query on a closed run replays it)', async () => {
    const entries = chain(250);
    const recent = entries.slice(50);
    const { client, asked } = fakeClient(250, recent, 120);
    const live = await liveAudit(client, 'r');
    expect(live?.entries.map((e) => e.seq)).toEqual(recent.map((e) => e.seq));
    expect(asked).toEqual(['auditHead', 'audit>0', `audit>${recent[119]!.seq}`]);
  });

  it('asks for no page when the run has recorded nothing, and stops at an empty page short of the head', async () => {
    const none = fakeClient(0, [], 500);
    expect((await liveAudit(none.client, 'r'))?.entries).toEqual([]);
    expect(none.asked).toEqual(['auditHead']);
    const short = fakeClient(10, chain(4), 500);
    expect((await liveAudit(short.client, 'r'))?.entries).toHaveLength(4);
    expect(short.asked).toEqual(['auditHead', 'audit>0', 'audit>4']);
  });

  it('asks a completed run nothing: its history knows every entry it recorded', async () => {
    const done = fakeClient(10, chain(10), 500, 'COMPLETED');
    expect(await liveAudit(done.client, 'r')).toBeUndefined();
    expect(done.asked).toEqual([]);
    for (const status of ['FAILED', 'TERMINATED', 'CANCELLED', 'TIMED_OUT']) {
      const ended = fakeClient(10, chain(10), 500, status);
      expect((await liveAudit(ended.client, 'r'))?.entries).toHaveLength(10);
    }
  });
});
