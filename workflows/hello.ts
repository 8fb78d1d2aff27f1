import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { greet } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds' });

/** A smoke-test workflow: one activity round trip. Used by the foundation tests. */
export async function helloWorkflow(name: string): Promise<string> {
  return greet(name);
}
