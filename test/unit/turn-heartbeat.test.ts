import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CancelledFailure } from '@temporalio/common';
import {
  cancelledByWorkflow,
  NUDGED_EVERY_MS,
  NUDGED_FOR_MS,
  NUDGED_QUICK_EVERY_MS,
  NUDGED_QUICK_FOR_MS,
  TURN_HEARTBEAT_MS,
  TurnHeartbeat,
  turnHeartbeatEvery,
  TurnNudges,
  turnKey,
} from '../../activities/turn-heartbeat';
import { AGENT_TURN_HEARTBEAT_TIMEOUT } from '../../src/shared/failures';

function fakeContext(workflowId = 'run/phase/agent', runId = 'r1', heartbeatTimeoutMs?: number) {
  const sent: unknown[] = [];
  const abort = new AbortController();
  return {
    sent,
    abort,
    ctx: {
      heartbeat: (d: unknown) => sent.push(d),
      info: { workflowExecution: { workflowId, runId }, heartbeatTimeoutMs } as never,
      cancellationSignal: abort.signal,
    },
  };
}

describe('TurnHeartbeat', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('beats at a third of the heartbeat timeout, between 2 s and 10 s', () => {
    expect(turnHeartbeatEvery(30_000)).toBe(10_000);
    expect(turnHeartbeatEvery(10_000)).toBe(3_333);
    expect(turnHeartbeatEvery(3_000)).toBe(2_000);
    expect(turnHeartbeatEvery(600_000)).toBe(TURN_HEARTBEAT_MS);
    expect(turnHeartbeatEvery(undefined)).toBe(TURN_HEARTBEAT_MS);
  });

  // Every beat is a write on the server: at one beat every 2 s, 100 held agents' beats were 70 % of the dev
  // server's requests and it fell over (bench:fleet N = 100, issue #16). A turn renews its lease every
  // second and beats with it: what reaches the server is paced by the turn's own timeout.
  it("an agent turn's beats reach the server every 10 s, and always within a third of its timeout", () => {
    const timeoutMs = parseInt(AGENT_TURN_HEARTBEAT_TIMEOUT, 10) * 1_000;
    expect(timeoutMs).toBe(30_000);
    for (const [timeout, most] of [
      [timeoutMs, 7],
      // Scheduled by a workflow of before (10 s): it must still beat often enough for that.
      [10_000, 19],
    ] as const) {
      const { ctx, sent } = fakeContext('run/phase/agent', 'r1', timeout);
      const hb = new TurnHeartbeat(ctx, new TurnNudges());
      const at: number[] = [];
      const t0 = Date.now();
      for (let s = 0; s < 60; s++) {
        const before = sent.length;
        hb.beat(s);
        if (sent.length > before) at.push(Date.now() - t0);
        vi.advanceTimersByTime(1_000);
      }
      hb.stop();
      expect(sent.length).toBeLessThanOrEqual(most);
      const gaps = at.slice(1).map((x, i) => x - at[i]!);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(timeout / 3 + 1_000);
    }
  });

  it('sends the first beat at once, then one per interval however often the turn beats', () => {
    const { ctx, sent } = fakeContext();
    const hb = new TurnHeartbeat(ctx, new TurnNudges());
    hb.beat(1);
    for (let i = 2; i <= 10; i++) {
      vi.advanceTimersByTime(TURN_HEARTBEAT_MS / 4);
      hb.beat(i);
    }
    // 9 quarter intervals after the first: beats at 0, one and two intervals reached the server.
    expect(sent).toEqual([1, 5, 9]);
    hb.stop();
  });

  it('sends a beat marked `now` at once (money spent), and the pacing goes on from it', () => {
    const { ctx, sent } = fakeContext();
    const hb = new TurnHeartbeat(ctx, new TurnNudges());
    hb.beat('start');
    vi.advanceTimersByTime(100);
    hb.beat('paced');
    hb.beat('cost', true);
    vi.advanceTimersByTime(TURN_HEARTBEAT_MS - 100);
    hb.beat('soon after');
    vi.advanceTimersByTime(100);
    hb.beat('due');
    expect(sent).toEqual(['start', 'cost', 'due']);
    hb.stop();
  });

  it('a nudge makes it beat at once, every 10 ms, then every 50 ms, until cancelled, and only for its own agent', () => {
    const nudges = new TurnNudges();
    const mine = fakeContext('run/p/a', 'r1');
    const other = fakeContext('run/p/b', 'r1');
    const hb = new TurnHeartbeat(mine.ctx, nudges);
    const hb2 = new TurnHeartbeat(other.ctx, nudges);
    hb.beat('x');
    hb2.beat('y');
    nudges.nudge(turnKey('run/p/a', 'r1'));
    expect(mine.sent).toEqual(['x', 'x']);
    // The beat at once nearly always goes before the server recorded the cancellation: the next comes soon.
    vi.advanceTimersByTime(NUDGED_QUICK_EVERY_MS);
    expect(mine.sent).toHaveLength(3);
    // Quick beats for the first 150 ms (at 10, 20, …, 150), then every 50 ms.
    vi.advanceTimersByTime(NUDGED_QUICK_FOR_MS - NUDGED_QUICK_EVERY_MS);
    const quick = 2 + NUDGED_QUICK_FOR_MS / NUDGED_QUICK_EVERY_MS;
    expect(mine.sent).toHaveLength(quick);
    vi.advanceTimersByTime(NUDGED_EVERY_MS * 4);
    expect(mine.sent).toHaveLength(quick + 4);
    expect(other.sent).toEqual(['y']);
    mine.abort.abort();
    vi.advanceTimersByTime(NUDGED_EVERY_MS * 4);
    expect(mine.sent).toHaveLength(quick + 4);
    hb.stop();
    hb2.stop();
    expect(nudges.size).toBe(0);
  });

  it('a nudge that brings no cancellation stops beating fast after a while', () => {
    const nudges = new TurnNudges();
    const { ctx, sent } = fakeContext();
    const hb = new TurnHeartbeat(ctx, nudges);
    hb.beat(0);
    nudges.nudge(turnKey('run/phase/agent', 'r1'));
    vi.advanceTimersByTime(NUDGED_FOR_MS + 1_000);
    const after = sent.length;
    expect(after).toBeGreaterThan((NUDGED_FOR_MS - NUDGED_QUICK_FOR_MS) / NUDGED_EVERY_MS - 5);
    expect(after).toBeLessThan(
      NUDGED_QUICK_FOR_MS / NUDGED_QUICK_EVERY_MS + NUDGED_FOR_MS / NUDGED_EVERY_MS + 5,
    );
    vi.advanceTimersByTime(TURN_HEARTBEAT_MS - 1);
    expect(sent).toHaveLength(after);
    hb.stop();
  });
});

describe('a cancelled turn', () => {
  const cancelled = (reason?: unknown) => {
    const ac = new AbortController();
    if (reason !== undefined) ac.abort(reason);
    return { cancellationSignal: ac.signal };
  };
  it('was asked for by its workflow only when the SDK says CANCELLED', () => {
    expect(cancelledByWorkflow(cancelled(new CancelledFailure('CANCELLED')))).toBe(true);
    // A lost heartbeat, a worker shutting down, a reset: not the run doing as told.
    expect(cancelledByWorkflow(cancelled(new CancelledFailure('TIMED_OUT')))).toBe(false);
    expect(cancelledByWorkflow(cancelled(new CancelledFailure('WORKER_SHUTDOWN')))).toBe(false);
    expect(cancelledByWorkflow(cancelled())).toBe(false);
  });
});
