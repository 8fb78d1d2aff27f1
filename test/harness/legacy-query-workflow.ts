/**
 * The smallest workflow that shows the sdk-core legacy-query reordering (workflows/interceptors.ts):
 * a timer whose continuation schedules an activity, and an update. Test-only
 * (test/workflow/legacy-query-replay.test.ts bundles it on its own), so the production worker registers
 * no workflow type a user cannot use.
 */
import {
  condition,
  defineQuery,
  defineUpdate,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';

export const bumpUpdate = defineUpdate<number>('bump');
export const bumpsQuery = defineQuery<number>('bumps');

const { tick } = proxyActivities<{ tick(): Promise<void> }>({ startToCloseTimeout: '30 seconds' });

/** Sleeps 8 s, schedules `tick`, and returns once a `bump` update was accepted. */
export async function legacyQueryWorkflow(): Promise<number> {
  let bumps = 0;
  setHandler(bumpUpdate, () => ++bumps);
  setHandler(bumpsQuery, () => bumps);
  await sleep('8 seconds');
  await tick();
  await condition(() => bumps > 0);
  return bumps;
}
