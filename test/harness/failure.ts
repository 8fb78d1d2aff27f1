/** What an activity run in a test failed with, asserted to be a named ApplicationFailure. */
import { ApplicationFailure } from '@temporalio/common';
import { expect } from 'vitest';

/** Awaits `p`, which must reject with an ApplicationFailure (its type and message are the test's to check). */
export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}
