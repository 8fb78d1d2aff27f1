/** Issue 14: `constraints.timeline` as people write it, the deadline it sets and the warning past it. */
import { describe, expect, it } from 'vitest';
import { parseIntake } from '../../config/intake';
import { deadlineFor } from '../../src/runs';
import { formatDuration, parseDuration } from '../../src/shared/duration';
import { deadlineWarning } from '../../workflows/project/status';

const DAY = 86_400_000;

describe('timeline', () => {
  it('parses the durations an intake writes, and refuses the rest', () => {
    expect(parseDuration('2 weeks')).toBe(14 * DAY);
    expect(parseDuration('10 days')).toBe(10 * DAY);
    expect(parseDuration('36h')).toBe(36 * 3_600_000);
    expect(parseDuration('1w 2d')).toBe(9 * DAY);
    expect(parseDuration('1 week and 2 days')).toBe(9 * DAY);
    expect(parseDuration('90 minutes')).toBe(90 * 60_000);
    for (const bad of ['soon', '2', '', '0d', '-1d', '2 fortnights', 'd2'])
      expect(parseDuration(bad)).toBeUndefined();
    expect(parseDuration('0d', { allowZero: true })).toBe(0);
    expect(formatDuration(DAY + 2 * 3_600_000 + 5 * 60_000)).toBe('1d 2h');
    expect(formatDuration(45 * 60_000)).toBe('45m');
  });

  it('the v2 intake is accepted; a bad timeline gets one line naming the field', () => {
    const ok = parseIntake(
      'project: { name: x }\nphases: [planning]\nconstraints: { timeline: "2 weeks", budget_tokens: 2000000 }\n',
      'intake.yaml',
    );
    expect(ok.constraints.timeline).toBe('2 weeks');
    const now = Date.parse('2026-11-30T20:00:00Z');
    expect(deadlineFor(ok, now)).toEqual({ deadline: '2026-12-14T20:00:00.000Z' });
    let message = '';
    try {
      parseIntake(
        'project: { name: x }\nphases: [planning]\nconstraints: { timeline: "soon" }\n',
        'intake.yaml',
      );
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      'intake.yaml: constraints.timeline: must be a duration like "2 weeks", "10 days", "36h" or "1w 2d" (got "soon")',
    );
  });

  it('warns once phases end past the deadline, and while a run still going has overrun it', () => {
    const deadline = '2026-12-01T00:00:00.000Z';
    const due = Date.parse(deadline);
    const at = (ms: number) => new Date(due + ms).toISOString();
    expect(deadlineWarning(undefined, [], false, due + DAY)).toBeUndefined();
    const onTime = [{ phase: 'planning', status: 'completed' as const, completedAt: at(-1000) }];
    expect(deadlineWarning(deadline, onTime, false, due - 1)).toBeUndefined();
    const late = [...onTime, { phase: 'qa', status: 'completed' as const, completedAt: at(2 * 3_600_000) }];
    expect(deadlineWarning(deadline, late, true, due + DAY)).toEqual({
      text: `past the deadline ${deadline}: phase "qa" ended 2h after it`,
      late: 1,
      overrunning: false,
    });
    expect(deadlineWarning(deadline, onTime, false, due + 3 * 60_000)?.text).toBe(
      `past the deadline ${deadline}: the run is still going, 3m past it`,
    );
  });
});
