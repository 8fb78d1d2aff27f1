/**
 * Execution strategies: ordering and early-stop semantics. They are plain async functions over a `run`
 * callback, so these tests drive them with timed fakes; in a workflow `run` starts a child agentWorkflow.
 */
import { describe, expect, it } from 'vitest';
import { StrategySchema } from '../../src/shared/spec';
import { runStrategy } from '../../workflows/strategies';

interface R {
  i: number;
  ok: boolean;
  out: string;
  input?: string;
}
const hooks = { ok: (r: R) => r.ok, output: (r: R) => r.out };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake agent i that takes delays[i] ms and fails when i is in `failing`. */
function fakeRun(delays: number[], failing: number[] = [], log: string[] = []) {
  let running = 0;
  let peak = 0;
  const run = async (i: number, input: string | undefined): Promise<R> => {
    running++;
    peak = Math.max(peak, running);
    log.push(`start ${i}`);
    await sleep(delays[i] ?? 0);
    running--;
    log.push(`end ${i}`);
    return { i, ok: !failing.includes(i), out: `out${i}`, input };
  };
  return { run, peak: () => peak, log };
}

describe('parallel', () => {
  it('returns results in completion order and honours max_concurrency', async () => {
    // Driven step by step, not by timers: the order must not depend on how loaded the machine is.
    const started: number[] = [];
    const finish = new Map<number, () => void>();
    let running = 0;
    let peak = 0;
    const run = async (i: number): Promise<R> => {
      running++;
      peak = Math.max(peak, running);
      started.push(i);
      await new Promise<void>((resolve) => finish.set(i, resolve));
      running--;
      return { i, ok: true, out: `out${i}` };
    };
    const settle = () => new Promise((r) => setImmediate(r));
    const done = runStrategy(4, StrategySchema.parse({ type: 'parallel', max_concurrency: 2 }), run, hooks);
    await settle();
    expect(started).toEqual([0, 1]);
    // Lane of 1 goes on to 2, then 3, while 0 is still running; 0 ends last.
    for (const [ends, next] of [
      [1, [0, 1, 2]],
      [2, [0, 1, 2, 3]],
      [3, [0, 1, 2, 3]],
      [0, [0, 1, 2, 3]],
    ] as const) {
      finish.get(ends)!();
      await settle();
      expect(started).toEqual(next);
    }
    const r = await done;
    expect(peak).toBe(2);
    expect(r.results.map((x) => x.i)).toEqual([1, 2, 3, 0]);
    expect(r.skipped).toEqual([]);
  });

  it('runs every agent even when one fails (no early stop)', async () => {
    const f = fakeRun([5, 5, 5], [0]);
    const r = await runStrategy(3, StrategySchema.parse({ type: 'parallel' }), f.run, hooks);
    expect(r.results).toHaveLength(3);
    expect(f.peak()).toBe(3);
  });
});

describe('sequential', () => {
  it('runs in order and passes each output to the next with pass_output', async () => {
    const f = fakeRun([20, 1, 1]);
    const r = await runStrategy(
      3,
      StrategySchema.parse({ type: 'sequential', pass_output: true }),
      f.run,
      hooks,
    );
    expect(r.results.map((x) => x.i)).toEqual([0, 1, 2]);
    expect(r.results.map((x) => x.input)).toEqual([undefined, 'out0', 'out1']);
    expect(f.peak()).toBe(1);
  });

  it('stops at the first failure with stop_on_failure, and the rest are skipped', async () => {
    const f = fakeRun([1, 1, 1, 1], [1]);
    const r = await runStrategy(
      4,
      StrategySchema.parse({ type: 'sequential', stop_on_failure: true }),
      f.run,
      hooks,
    );
    expect(r.results.map((x) => x.i)).toEqual([0, 1]);
    expect(r.skipped).toEqual([2, 3]);
  });

  it('goes on after a failure without stop_on_failure', async () => {
    const f = fakeRun([1, 1, 1], [1]);
    const r = await runStrategy(
      3,
      StrategySchema.parse({ type: 'sequential', stop_on_failure: false }),
      f.run,
      hooks,
    );
    expect(r.results.map((x) => [x.i, x.ok])).toEqual([
      [0, true],
      [1, false],
      [2, true],
    ]);
  });
});

describe('fallback', () => {
  it('stops at the first success; later agents never start', async () => {
    const f = fakeRun([1, 1, 1, 1], [0, 1]);
    const r = await runStrategy(4, StrategySchema.parse({ type: 'fallback' }), f.run, hooks);
    expect(r.results.map((x) => [x.i, x.ok])).toEqual([
      [0, false],
      [1, false],
      [2, true],
    ]);
    expect(r.skipped).toEqual([3]);
    expect(f.log).not.toContain('start 3');
  });

  it('tries every agent when all fail', async () => {
    const f = fakeRun([1, 1], [0, 1]);
    const r = await runStrategy(2, StrategySchema.parse({ type: 'fallback' }), f.run, hooks);
    expect(r.results.map((x) => x.ok)).toEqual([false, false]);
    expect(r.skipped).toEqual([]);
  });
});

describe('batched', () => {
  it('runs batches of batch_size in parallel, one batch after another, passing joined outputs', async () => {
    const log: string[] = [];
    const f = fakeRun([10, 1, 1, 1, 1], [], log);
    const r = await runStrategy(
      5,
      StrategySchema.parse({ type: 'batched', batch_size: 2, pass_output: true }),
      f.run,
      hooks,
    );
    expect(f.peak()).toBe(2);
    // Batch 2 starts only after both of batch 1 ended.
    expect(log.indexOf('start 2')).toBeGreaterThan(log.indexOf('end 0'));
    expect(r.results.map((x) => x.i)).toEqual([0, 1, 2, 3, 4]);
    expect(r.results.map((x) => x.input)).toEqual([
      undefined,
      undefined,
      'out0\nout1',
      'out0\nout1',
      'out2\nout3',
    ]);
  });

  it('a failed batch stops the rest with stop_on_failure', async () => {
    const f = fakeRun([1, 1, 1, 1, 1, 1], [3]);
    const r = await runStrategy(
      6,
      StrategySchema.parse({ type: 'batched', batch_size: 2, stop_on_failure: true }),
      f.run,
      hooks,
    );
    expect(r.results.map((x) => x.i)).toEqual([0, 1, 2, 3]);
    expect(r.skipped).toEqual([4, 5]);
  });
});
