import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  NUDGED_EVERY_MS,
  NUDGED_FOR_MS,
  TURN_HEARTBEAT_MS,
  TurnHeartbeat,
  TurnNudges,
  turnKey,
} from '../../activities/turn-heartbeat';

function fakeContext(workflowId = 'run/phase/agent', runId = 'r1') {
  const sent: unknown[] = [];
  const abort = new AbortController();
  return {
    sent,
    abort,
    ctx: {
      heartbeat: (d: unknown) => sent.push(d),
      info: { workflowExecution: { workflowId, runId } } as never,
      cancellationSignal: abort.signal,
    },
  };
}

describe('TurnHeartbeat', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('sends the first beat at once, then one per interval however often the turn beats', () => {
    const { ctx, sent } = fakeContext();
    const hb = new TurnHeartbeat(ctx, new TurnNudges());
    hb.beat(1);
    for (let i = 2; i <= 10; i++) {
      vi.advanceTimersByTime(TURN_HEARTBEAT_MS / 4);
      hb.beat(i);
    }
    // 9 × 500 ms = 4.5 s after the first: beats at 0, 2 s and 4 s reached the server.
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

  it('a nudge makes it beat every 50 ms at once, until cancelled, and only for its own agent', () => {
    const nudges = new TurnNudges();
    const mine = fakeContext('run/p/a', 'r1');
    const other = fakeContext('run/p/b', 'r1');
    const hb = new TurnHeartbeat(mine.ctx, nudges);
    const hb2 = new TurnHeartbeat(other.ctx, nudges);
    hb.beat('x');
    hb2.beat('y');
    nudges.nudge(turnKey('run/p/a', 'r1'));
    expect(mine.sent).toEqual(['x', 'x']);
    vi.advanceTimersByTime(NUDGED_EVERY_MS * 4);
    expect(mine.sent).toHaveLength(6);
    expect(other.sent).toEqual(['y']);
    mine.abort.abort();
    vi.advanceTimersByTime(NUDGED_EVERY_MS * 4);
    expect(mine.sent).toHaveLength(6);
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
    expect(after).toBeGreaterThan(NUDGED_FOR_MS / NUDGED_EVERY_MS - 5);
    vi.advanceTimersByTime(TURN_HEARTBEAT_MS - 1);
    expect(sent).toHaveLength(after);
    hb.stop();
  });
});
