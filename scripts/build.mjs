#!/usr/bin/env node
// @ts-check
/**
 * The build step: `npm install` runs it (the `prepare` script), `make install` and `make test` too.
 * Compiles the CLI into dist/cli/, prebuilds the workflow bundle into dist/workflow-bundle.js and builds
 * the library entry points into dist/lib/ (scripts/build-library.mjs), each only when its sources
 * changed since the last build (`--force` rebuilds all three). `--traced` also prebuilds the traced workflow
 * bundle, which a worker exporting traces otherwise builds on its first start (the Dockerfile asks for it:
 * a container's worker should poll at once, traced or not).
 */
import { buildCli, buildWorkflowBundle, cliStaleness, workflowBundleStaleness } from './build-lib.mjs';
import { buildLibrary, libraryStaleness } from './build-library.mjs';

const force = process.argv.includes('--force');
const withTraced = process.argv.includes('--traced');
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
const l = Date.now();
const lib = force ? 'forced' : libraryStaleness();
if (lib !== undefined) {
  await buildLibrary();
  process.stdout.write(`built dist/lib (${lib}) in ${Date.now() - l} ms\n`);
}
const tr = Date.now();
const traced = withTraced ? (force ? 'forced' : workflowBundleStaleness({ traced: true })) : undefined;
if (traced !== undefined) {
  await buildWorkflowBundle({ traced: true });
  process.stdout.write(`built dist/workflow-bundle-traced.js (${traced}) in ${Date.now() - tr} ms\n`);
}
if (cli === undefined && bundle === undefined && lib === undefined && traced === undefined) {
  process.stdout.write('dist/ is up to date\n');
}
