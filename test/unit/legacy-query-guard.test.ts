/**
 * The rule of workflows/interceptors.ts, without a server: an activation that applies more history at the
 * previous activation's workflow time, while not replaying, is one no workflow task started.
 */
import { describe, expect, it } from 'vitest';
import { appliesUnstartedEvents, markOf, type ActivationFacts } from '../../workflows/interceptors';

const at = (seconds: number, nanos = 0) => ({ seconds, nanos });
const fireTimer = [{ queryWorkflow: null, fireTimer: {} }];
const query = [{ queryWorkflow: {} }];

function act(
  historyLength: number,
  timestamp: ActivationFacts['timestamp'],
  extra: Partial<ActivationFacts> = {},
) {
  return {
    historyLength,
    timestamp,
    isReplaying: false,
    jobs: fireTimer,
    ...extra,
  } satisfies ActivationFacts;
}

describe('appliesUnstartedEvents', () => {
  const prev = markOf(act(51, at(1000, 5)))!;

  it('flags new history applied at the previous workflow time (the legacy-query early activation)', () => {
    expect(appliesUnstartedEvents(prev, act(55, at(1000, 5)))).toBe(true);
  });

  it('passes a real workflow task: it moves the time to its own start', () => {
    expect(appliesUnstartedEvents(prev, act(58, at(1000, 6)))).toBe(false);
    expect(appliesUnstartedEvents(prev, act(58, at(1011, 0)))).toBe(false);
  });

  it('passes a second activation of the same task (no new history)', () => {
    expect(appliesUnstartedEvents(prev, act(51, at(1000, 5)))).toBe(false);
  });

  it('never flags a replay, a query-only activation or the first activation', () => {
    expect(appliesUnstartedEvents(prev, act(55, at(1000, 5), { isReplaying: true }))).toBe(false);
    expect(appliesUnstartedEvents(prev, act(55, at(1000, 5), { jobs: query }))).toBe(false);
    expect(appliesUnstartedEvents(undefined, act(55, at(1000, 5)))).toBe(false);
  });

  it('compares the time exactly, whatever the seconds are carried in (number or Long-like)', () => {
    const long = { toString: () => '1000' };
    expect(appliesUnstartedEvents(prev, act(55, { seconds: long, nanos: 5 }))).toBe(true);
    expect(appliesUnstartedEvents(prev, act(55, { seconds: long, nanos: 4 }))).toBe(false);
    // No time at all is never taken for "the same time".
    expect(appliesUnstartedEvents(markOf(act(51, null)), act(55, null))).toBe(false);
  });

  it('a query-only activation leaves no mark', () => {
    expect(markOf(act(51, at(1000), { jobs: query }))).toBeUndefined();
  });
});
