#!/usr/bin/env node
// @ts-check
/**
 * The build step: `npm install` runs it (the `prepare` script), `make install` and `make test` too.
 * Compiles the CLI into dist/cli/ and prebuilds the workflow bundle into dist/workflow-bundle.js, each
 * only when its sources changed since the last build (`--force` rebuilds both).
 */
import { buildCli, buildWorkflowBundle, cliStaleness, workflowBundleStaleness } from './build-lib.mjs';

const force = process.argv.includes('--force');
const started = Date.now();
const cli = force ? 'forced' : cliStaleness();
if (cli !== undefined) {
  await buildCli();
  process.stdout.write(`built dist/cli (${cli}) in ${Date.now() - started} ms\n`);
}
const t = Date.now();
const bundle = force ? 'forced' : workflowBundleStaleness();
if (bundle !== undefined) {
  await buildWorkflowBundle();
  process.stdout.write(`built dist/workflow-bundle.js (${bundle}) in ${Date.now() - t} ms\n`);
}
if (cli === undefined && bundle === undefined) process.stdout.write('dist/ is up to date\n');
