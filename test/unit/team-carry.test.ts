import { describe, expect, it } from 'vitest';
import {
  MIN_EVENTS_BEFORE_CONTINUING,
  shouldContinueAsNew,
  TEAM_CONTINUE_AS_NEW_AT,
} from '../../src/shared/team-carry';

describe('shouldContinueAsNew', () => {
  const quiet = { length: 500, size: 100_000, suggested: false };

  it('continues at the event or byte limit, or when the server suggests it', () => {
    expect(shouldContinueAsNew(quiet)).toBe(false);
    expect(shouldContinueAsNew({ ...quiet, length: TEAM_CONTINUE_AS_NEW_AT.events })).toBe(true);
    expect(shouldContinueAsNew({ ...quiet, size: TEAM_CONTINUE_AS_NEW_AT.bytes })).toBe(true);
    expect(shouldContinueAsNew({ ...quiet, suggested: true })).toBe(true);
  });

  it('never right after a start: a big carry must not make every execution continue at once', () => {
    const young = { length: MIN_EVENTS_BEFORE_CONTINUING - 1, size: 5_000_000, suggested: true };
    expect(shouldContinueAsNew(young)).toBe(false);
  });

  it('takes the limits it is given (tests and benchmarks lower them)', () => {
    expect(shouldContinueAsNew(quiet, { events: 400, bytes: 10_000_000 })).toBe(true);
    expect(shouldContinueAsNew(quiet, { events: 10_000, bytes: 50_000 })).toBe(true);
    expect(shouldContinueAsNew(quiet, { events: 10_000, bytes: 10_000_000 })).toBe(false);
  });

  it('the defaults leave room under 2 MB for the drain before continuing', () => {
    expect(TEAM_CONTINUE_AS_NEW_AT.bytes).toBeLessThanOrEqual(1_000_000);
    expect(TEAM_CONTINUE_AS_NEW_AT.events).toBeLessThan(10_000);
  });
});
