/**
 * Durations as people write them in an intake's `constraints.timeline`: "2 weeks", "10 days", "36h",
 * "1w 2d", "90 minutes". Pure and deterministic: the intake, the client and the workflow share it.
 */

const MS: Record<string, number> = {};
const unit = (ms: number, ...names: string[]) => names.forEach((n) => (MS[n] = ms));
unit(1000, 's', 'sec', 'secs', 'second', 'seconds');
unit(60_000, 'm', 'min', 'mins', 'minute', 'minutes');
unit(3_600_000, 'h', 'hr', 'hrs', 'hour', 'hours');
unit(86_400_000, 'd', 'day', 'days');
unit(7 * 86_400_000, 'w', 'wk', 'wks', 'week', 'weeks');
/** A month is taken as 30 days: a timeline is a target, not a calendar. */
unit(30 * 86_400_000, 'mo', 'month', 'months');

/** What a timeline must look like, for error messages. */
export const DURATION_EXAMPLES = '"2 weeks", "10 days", "36h" or "1w 2d"';

/**
 * Milliseconds in `text` (a sum of `<number> <unit>` parts, separated by spaces, commas or "and"), or
 * undefined when it is not a positive duration (zero too when `allowZero`, as in `--older-than 0d`).
 */
export function parseDuration(text: string, opts: { allowZero?: boolean } = {}): number | undefined {
  const parts = text
    .trim()
    .toLowerCase()
    .split(/\s*(?:,|\band\b)\s*|\s+(?=\d)/)
    .filter(Boolean);
  if (parts.length === 0) return undefined;
  let total = 0;
  for (const part of parts) {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/.exec(part);
    const ms = m ? MS[m[2]!] : undefined;
    if (!m || ms === undefined) return undefined;
    total += Number(m[1]) * ms;
  }
  const ok = Number.isFinite(total) && (total > 0 || (opts.allowZero === true && total === 0));
  return ok ? Math.round(total) : undefined;
}

/** A duration for people: `2d 3h`, `45m`, `12s` (the two largest units). */
export function formatDuration(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const out: string[] = [];
  let rest = Math.max(0, Math.round(ms));
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || out.length > 0) out.push(`${n}${name}`);
    if (out.length === 2) break;
  }
  const shown = out.filter((p, i) => i === 0 || !p.startsWith('0'));
  return shown.length ? shown.join(' ') : '0s';
}
