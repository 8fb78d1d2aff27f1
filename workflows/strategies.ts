/**
 * Execution strategies over a phase's agents. Pure orchestration: `run` starts one agent (a child
 * workflow) and resolves with its result; a strategy decides order, concurrency and early stops.
 */
import type { Strategy } from '../src/shared/spec';

export interface StrategyResult<R> {
  /** parallel: completion order; sequential, fallback and batched: execution order. */
  results: R[];
  /** Agents that never started because the strategy stopped early. */
  skipped: number[];
}

export type RunAgent<R> = (index: number, passedOutput: string | undefined) => Promise<R>;

export interface StrategyHooks<R> {
  ok(result: R): boolean;
  output(result: R): string;
}

/** Runs agents in parallel, at most `max_concurrency` at a time; results arrive in completion order. */
export async function runParallel<R>(
  count: number,
  strategy: Strategy,
  run: RunAgent<R>,
): Promise<StrategyResult<R>> {
  const limit = Math.max(1, strategy.max_concurrency ?? count);
  const results: R[] = [];
  let next = 0;
  async function lane(): Promise<void> {
    while (next < count) {
      const i = next++;
      results.push(await run(i, undefined));
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, () => lane()));
  return { results, skipped: [] };
}

/** One after another; `pass_output` hands each agent the previous output; `stop_on_failure` stops early. */
export async function runSequential<R>(
  count: number,
  strategy: Strategy,
  run: RunAgent<R>,
  hooks: StrategyHooks<R>,
): Promise<StrategyResult<R>> {
  const results: R[] = [];
  let passed: string | undefined;
  for (let i = 0; i < count; i++) {
    const r = await run(i, strategy.pass_output ? passed : undefined);
    results.push(r);
    passed = hooks.output(r);
    if (!hooks.ok(r) && strategy.stop_on_failure) {
      return { results, skipped: range(i + 1, count) };
    }
  }
  return { results, skipped: [] };
}

/** Tries agents in order until one succeeds (the first success wins); each attempt has its own timeout. */
export async function runFallback<R>(
  count: number,
  run: RunAgent<R>,
  hooks: StrategyHooks<R>,
): Promise<StrategyResult<R>> {
  const results: R[] = [];
  for (let i = 0; i < count; i++) {
    const r = await run(i, undefined);
    results.push(r);
    if (hooks.ok(r)) return { results, skipped: range(i + 1, count) };
  }
  return { results, skipped: [] };
}

/**
 * Batches of `batch_size` run in parallel; batches run one after another. With `pass_output` each batch
 * gets the joined outputs of the previous one; with `stop_on_failure` a failed batch stops the rest.
 */
export async function runBatched<R>(
  count: number,
  strategy: Strategy,
  run: RunAgent<R>,
  hooks: StrategyHooks<R>,
): Promise<StrategyResult<R>> {
  const size = Math.max(1, strategy.batch_size ?? count);
  const results: R[] = [];
  let passed: string | undefined;
  for (let start = 0; start < count; start += size) {
    const batch = range(start, Math.min(count, start + size));
    const input = strategy.pass_output ? passed : undefined;
    const batchResults = await Promise.all(batch.map((i) => run(i, input)));
    results.push(...batchResults);
    passed = batchResults.map((r) => hooks.output(r)).join('\n');
    if (strategy.stop_on_failure && batchResults.some((r) => !hooks.ok(r))) {
      return { results, skipped: range(start + size, count) };
    }
  }
  return { results, skipped: [] };
}

export async function runStrategy<R>(
  count: number,
  strategy: Strategy,
  run: RunAgent<R>,
  hooks: StrategyHooks<R>,
): Promise<StrategyResult<R>> {
  switch (strategy.type) {
    case 'parallel':
      return runParallel(count, strategy, run);
    case 'sequential':
      return runSequential(count, strategy, run, hooks);
    case 'fallback':
      return runFallback(count, run, hooks);
    case 'batched':
      return runBatched(count, strategy, run, hooks);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, k) => from + k);
}
