import { describe, expect, it } from 'vitest';
import { spawnOutcome } from '../../src/teams';
import {
  fitsInDrainQueue,
  MIN_EVENTS_BEFORE_CONTINUING,
  QUEUED_INSTRUCTIONS_MAX_BYTES,
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

describe('fitsInDrainQueue', () => {
  it('always takes the first request: one request is at most 100,000 characters', () => {
    expect(fitsInDrainQueue([], 'x'.repeat(100_000), 10)).toBe(true);
  });

  it('holds requests until their instructions would pass the bound, counted in UTF-8 bytes', () => {
    const q = [{ instructions: 'a'.repeat(90) }];
    expect(fitsInDrainQueue(q, 'b'.repeat(10), 100)).toBe(true);
    expect(fitsInDrainQueue(q, 'b'.repeat(11), 100)).toBe(false);
    // Three bytes each in UTF-8: three fit in the last 10 bytes, four do not (four ASCII characters would).
    expect(fitsInDrainQueue(q, '\u20ac'.repeat(3), 100)).toBe(true);
    expect(fitsInDrainQueue(q, '\u20ac'.repeat(4), 100)).toBe(false);
  });

  it('the default bound keeps a full queue far below the 2 MB payload limit', () => {
    expect(QUEUED_INSTRUCTIONS_MAX_BYTES + 100_000 * 3).toBeLessThan(1_000_000);
  });
});

describe('spawnOutcome', () => {
  it('tells a started agent, a queued one and a resend apart', () => {
    expect(spawnOutcome({ duplicate: false, state: 'running' })).toBe('started');
    expect(spawnOutcome({ duplicate: false, state: 'starting' })).toBe('was accepted and starts in a moment');
    expect(spawnOutcome({ duplicate: true, state: 'starting' })).toBe('was requested before');
  });
});
