import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` needs nothing running; `temporal` gets one real dev server for the whole run
 * (test/harness/global-setup.ts). Both use the forks pool: Temporal workers must not run in worker threads.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    // The machine has 2 cores; every temporal test file runs its own worker against the shared server.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'temporal',
          include: ['test/workflow/**/*.test.ts', 'test/replay/**/*.test.ts', 'test/scenario/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 180_000,
        },
      },
    ],
  },
});
