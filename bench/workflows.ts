/** Workflows for the benchmarks: the product's own plus a raw Temporal baseline. */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

export * from '../workflows';

const { greet } = proxyActivities<Pick<Activities, 'greet'>>({ startToCloseTimeout: '1 minute' });

/** The baseline: `calls` sequential no-op activity calls and nothing else. */
export async function baselineWorkflow(calls: number): Promise<number> {
  for (let i = 0; i < calls; i++) await greet('bench');
  return calls;
}
