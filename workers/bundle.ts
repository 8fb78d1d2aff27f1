/**
 * The workflow bundle a worker runs. The build step prebuilds it (dist/workflow-bundle.js, see
 * scripts/build-lib.mjs), so a worker starts polling without bundling. When the prebuilt bundle is
 * missing or older than the workflow sources (a developer edited a workflow), the worker bundles now,
 * says so in one log line, and saves the result for the next start.
 */
import type { BundleOptions } from '@temporalio/worker';
import {
  buildWorkflowBundle,
  TRACED_WORKFLOW_BUNDLE,
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

/**
 * The prebuilt bundle when current; otherwise a fresh one (bundled now, seconds) with a log line. With
 * `traced`, the traced bundle (scripts/build-lib.mjs), built the same way on its first use.
 */
export async function loadWorkflowBundle(
  logger: Logger,
  opts: { traced?: boolean } = {},
): Promise<{ codePath: string }> {
  const traced = opts.traced ?? false;
  const why = workflowBundleStaleness({ traced });
  const bundle = traced ? TRACED_WORKFLOW_BUNDLE : WORKFLOW_BUNDLE;
  if (why === undefined) return { codePath: bundle };
  const started = Date.now();
  logger.warn(
    { reason: why, bundle },
    traced
      ? 'traced workflow bundle is missing or stale: bundling the workflows with tracing now'
      : 'prebuilt workflow bundle is missing or stale: bundling the workflows now (`npm run build` prebuilds it)',
  );
  const codePath = await buildWorkflowBundle({ logger: quietBundlerLogger(logger), traced });
  logger.info({ ms: Date.now() - started, bundle: codePath }, 'workflow bundle rebuilt');
  return { codePath };
}
