/**
 * The CLI's `total_cost_usd` as a cross-check of the meter: the pure comparison, and the warning a turn
 * logs (with both figures) when they differ by more than 1%. The charge is always the meter's.
 */
import { describe, expect, it } from 'vitest';
import { meterSummary, type ClaudeTurnSummary } from '../../activities/cli';
import { createLogger } from '../../src/logger';
import { crossCheckCost } from '../../src/meter/cross-check';
import type { MeterHandle } from '../../src/meter/gateway';
import { summarizeMeter, type MeterRecord } from '../../src/meter/meter';

describe('crossCheckCost', () => {
  it('agrees within 1% of the larger figure, either way round', () => {
    expect(crossCheckCost(100_000, 0.1)).toMatchObject({
      cliMicroUsd: 100_000,
      relativeDiff: 0,
      disagree: false,
    });
    expect(crossCheckCost(100_000, 0.101).disagree).toBe(false);
    expect(crossCheckCost(101_000, 0.1).disagree).toBe(false);
    expect(crossCheckCost(100_000, 0.102).disagree).toBe(true);
    expect(crossCheckCost(102_000, 0.1).disagree).toBe(true);
  });

  it('ignores float noise in the CLI sum and treats two zeros as agreeing', () => {
    expect(crossCheckCost(300_000, 0.1 + 0.2)).toMatchObject({ cliMicroUsd: 300_000, disagree: false });
    expect(crossCheckCost(0, 0)).toMatchObject({ relativeDiff: 0, disagree: false });
  });

  it('a turn the CLI says cost nothing but the meter charged (or the reverse) disagrees', () => {
    expect(crossCheckCost(5, 0)).toMatchObject({ relativeDiff: 1, disagree: true });
    expect(crossCheckCost(0, 0.2)).toMatchObject({ relativeDiff: 1, disagree: true });
  });

  it('a served model priced other than the requested one disagrees (opus served, haiku asked)', () => {
    const r = crossCheckCost(207_762, 0.041552);
    expect(r.disagree).toBe(true);
    expect(r.relativeDiff).toBeCloseTo(0.8, 2);
  });
});

describe('meterSummary', () => {
  const record = (microUsd: number): MeterRecord => ({
    v: 1,
    id: `msg_${microUsd}`,
    at: '2026-01-01T00:00:00.000Z',
    meterId: 'm',
    runId: 'r',
    phase: 'p',
    agent: 'a',
    model: 'claude-opus-4-5',
    pricedAs: 'claude-opus-4-5',
    usage: {
      input_tokens: 10,
      output_tokens: 20,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    },
    microUsd,
    tokens: 30,
  });
  const handle = (records: MeterRecord[]): MeterHandle => ({
    baseURL: 'http://127.0.0.1:1/a/x',
    meterFile: '/tmp/m.jsonl',
    spent: () => summarizeMeter(records),
    refusal: () => undefined,
    close: () => undefined,
  });
  const summary = (costUsd: number, costKnown = true): ClaudeTurnSummary =>
    ({ costUsd, costKnown, usage: {} }) as unknown as ClaudeTurnSummary;

  function run(cliUsd: number, meterMicro: number, opts: { costKnown?: boolean; crossCheck?: boolean } = {}) {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger(
      'warn',
      {},
      { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
    );
    const s = summary(cliUsd, opts.costKnown);
    meterSummary(s, handle([record(meterMicro)]), log, opts.crossCheck ?? true);
    return { s, warnings: lines.filter((l) => l.level === 40) };
  }

  it('charges the meter and warns with both figures when the CLI differs by more than 1%', () => {
    const { s, warnings } = run(0.041552, 207_762);
    expect(s).toMatchObject({ microUsd: 207_762, costUsd: 0.207762, cliCostUsd: 0.041552 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      msg: 'CLI cost differs from the meter by more than 1%',
      meterUsd: 0.207762,
      cliUsd: 0.041552,
      models: ['claude-opus-4-5'],
    });
  });

  it('stays quiet within 1%, without a CLI figure, and when told not to compare (a retry)', () => {
    expect(run(0.1005, 100_000).warnings).toEqual([]);
    expect(run(0, 100_000, { costKnown: false }).warnings).toEqual([]);
    expect(run(0.5, 100_000, { crossCheck: false }).warnings).toEqual([]);
    expect(run(0.5, 100_000).warnings).toHaveLength(1);
  });
});
