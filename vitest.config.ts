import { defineConfig } from 'vitest/config';

/**
 * Two projects, run as two tiers by `make test` (CONTRIBUTING.md):
 * - `unit`: needs nothing running (pure functions, the replay archive, the CLI without a server).
 *   Its global setup only brings the compiled CLI up to date.
 * - `temporal`: one real dev server for the whole run (test/harness/global-setup.ts); test/workflow
 *   and test/scenario (the real claude CLI against the local model server).
 * - `quiet`: test/quiet, tests that measure how close in time many processes start (issue #16's fleet
 *   test). They need the machine to themselves, so `make test` runs them last, alone, after both tiers.
 * A fourth, `cluster`, is not a tier of `make test`: `make test-cluster` runs it on the full server.
 * Both use the forks pool: Temporal workers must not run in worker threads.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    // The machine has 2 cores; every temporal test file runs its own worker against the shared server.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Console output of passing tests is noise; a failing test's output is shown with its failure.
    silent: 'passed-only',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/replay/**/*.test.ts'],
          globalSetup: ['test/harness/build-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'temporal',
          include: ['test/workflow/**/*.test.ts', 'test/scenario/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 180_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'quiet',
          include: ['test/quiet/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 600_000,
        },
      },
      {
        extends: true,
        test: {
          // `make test-cluster` only: the full Temporal server on PostgreSQL (test/harness/cluster-setup.ts).
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/harness/cluster-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
