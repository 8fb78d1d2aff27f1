/**
 * The workflow bundle a worker runs. The build step prebuilds it (dist/workflow-bundle.js, see
 * scripts/build-lib.mjs), so a worker starts polling without bundling. When the prebuilt bundle is
 * missing or older than the workflow sources (a developer edited a workflow), the worker bundles now,
 * says so in one log line, and saves the result for the next start.
 */
import type { BundleOptions } from '@temporalio/worker';
import {
  buildWorkflowBundle,
  WORKFLOW_BUNDLE,
  WORKFLOWS_ENTRY,
  workflowBundleStaleness,
} from '../scripts/build-lib.mjs';
import type { Logger } from '../src/logger';

/** Absolute path of the workflow entry point (workflows/index.ts). */
export const WORKFLOWS_PATH = WORKFLOWS_ENTRY;

const noop = (): void => undefined;

/** For bundleWorkflowCode: the bundler's statistics go nowhere, its errors to `logger` (if any). */
export function quietBundlerLogger(logger?: Logger): NonNullable<BundleOptions['logger']> {
  return {
    trace: noop,
    debug: noop,
    info: noop,
    log: noop,
    warn: (message, meta) => logger?.warn({ ...meta, bundler: true }, message),
    error: (message, meta) => logger?.error({ ...meta, bundler: true }, message),
  };
}

/** The prebuilt bundle when current; otherwise a fresh one (bundled now, seconds) with a log line. */
export async function loadWorkflowBundle(logger: Logger): Promise<{ codePath: string }> {
  const why = workflowBundleStaleness();
  if (why === undefined) return { codePath: WORKFLOW_BUNDLE };
  const started = Date.now();
  logger.warn(
    { reason: why, bundle: WORKFLOW_BUNDLE },
    'prebuilt workflow bundle is missing or stale: bundling the workflows now (`npm run build` prebuilds it)',
  );
  const codePath = await buildWorkflowBundle({ logger: quietBundlerLogger(logger) });
  logger.info({ ms: Date.now() - started, bundle: codePath }, 'workflow bundle rebuilt');
  return { codePath };
}
