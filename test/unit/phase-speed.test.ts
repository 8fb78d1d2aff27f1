/**
 * Decisions behind the phase's round trips (issue 12), tested without a server: which agent starts read
 * a meter, and how bench:phase gives a run's time to its steps.
 */
import { describe, expect, it } from 'vitest';
import { attribute, type Span } from '../../bench/breakdown';
import { isMetered } from '../../workflows/project/agents';

describe('isMetered', () => {
  it('meters model agents, not script agents, once both patches are in', () => {
    expect(isMetered('cli', true, () => true)).toBe(true);
    expect(isMetered('api', true, () => true)).toBe(true);
    expect(isMetered('script', true, () => true)).toBe(false);
  });

  it('keeps older histories as they were: every agent metered after metered-charge, none before', () => {
    expect(isMetered('script', true, () => false)).toBe(true);
    expect(isMetered('cli', false, () => true)).toBe(false);
    expect(isMetered('script', false, () => true)).toBe(false);
  });

  it('asks the script patch only for script agents (a patch marker is a command)', () => {
    let asked = 0;
    isMetered('cli', true, () => (asked++, true));
    expect(asked).toBe(0);
    isMetered('script', true, () => (asked++, true));
    expect(asked).toBe(1);
  });
});

describe('bench breakdown: attribute', () => {
  const span = (cat: string, start: number, end: number, prio: number): Span => ({ cat, start, end, prio });

  it('gives each moment to the highest-ranked step, idle when none, and the parts sum to the wall time', () => {
    const spans = [
      span('child', 0, 100, 11),
      span('agent › activity', 20, 60, 11.4),
      span('workflow task', 50, 70, 16),
    ];
    const out = attribute(spans, 0, 120);
    expect(out).toEqual({
      child: 20 + 30,
      'agent › activity': 30,
      'workflow task': 20,
      'idle (between events)': 20,
    });
    expect(Object.values(out).reduce((a, b) => a + b, 0)).toBe(120);
  });

  it('breaks a tie by the later start', () => {
    expect(attribute([span('a', 0, 10, 1), span('b', 5, 10, 1)], 0, 10)).toEqual({ a: 5, b: 5 });
  });
});
