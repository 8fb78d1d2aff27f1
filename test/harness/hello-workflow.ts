import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';

const { greet } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds' });

/**
 * A smoke-test workflow: one activity round trip. Test-only (test/workflow/hello.test.ts bundles it on
 * its own), so the production worker registers no workflow type a user cannot use.
 */
export async function helloWorkflow(name: string): Promise<string> {
  return greet(name);
}
