/**
 * workers/lazy-bundler: the Temporal SDK loads without its bundler (webpack, memfs, unionfs), and the
 * stand-in answers as the SDK's own module does. Each case runs in a fresh Node (this process may have
 * loaded the SDK already, when the stand-in does nothing).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/build-lib.mjs';

const exec = promisify(execFile);

/** Runs `body` (ESM, top-level await) in a fresh Node with tsx; returns what it printed as JSON. */
async function inFreshNode(body: string): Promise<unknown> {
  const script = `
    import { createRequire } from 'node:module';
    import { deferWorkflowBundler } from './workers/lazy-bundler.ts';
    const req = createRequire(${JSON.stringify(`${ROOT}/package.json`)});
    const bundlerFile = req.resolve('@temporalio/worker/lib/workflow/bundler.js');
    const bundlerPackages = () =>
      Object.keys(req.cache).filter((f) => /node_modules\\/(webpack|memfs|unionfs)\\//.test(f)).length;
    ${body}`;
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
  });
  return JSON.parse(stdout) as unknown;
}

describe('the deferred workflow bundler', () => {
  it('lets the SDK load without webpack, memfs and unionfs, and loads them on first use', async () => {
    const r = await inFreshNode(`
      const deferred = deferWorkflowBundler();
      const sdk = await import('@temporalio/worker');
      const before = bundlerPackages();
      const standIn = req.cache[bundlerFile].exports;
      const interceptors = standIn.defaultWorkflowInterceptorModules;
      const stillDeferred = bundlerPackages();
      const Bundler = standIn.WorkflowCodeBundler;
      const real = req.cache[bundlerFile].exports;
      console.log(JSON.stringify({
        deferred,
        before,
        stillDeferred,
        after: bundlerPackages(),
        realInCache: real !== standIn && real.WorkflowCodeBundler === Bundler,
        bundleWorkflowCode: typeof sdk.bundleWorkflowCode,
        interceptors,
        realInterceptors: real.defaultWorkflowInterceptorModules,
        standInKeys: Object.keys(standIn).sort(),
        realKeys: Object.keys(real).sort(),
        again: deferWorkflowBundler(),
      }));
    `);
    expect(r).toMatchObject({
      deferred: true,
      before: 0,
      stillDeferred: 0,
      realInCache: true,
      bundleWorkflowCode: 'function',
      again: false,
    });
    const o = r as Record<string, unknown>;
    expect(o.after).toBeGreaterThan(0);
    expect(o.interceptors).toEqual(o.realInterceptors);
    // Every export of the SDK's module is reachable through the stand-in, and nothing more.
    expect(o.standInKeys).toEqual(o.realKeys);
  });

  it('bundleWorkflowCode through the stand-in is the SDK bundling', async () => {
    const r = await inFreshNode(`
      deferWorkflowBundler();
      const { bundleWorkflowCode } = await import('@temporalio/worker');
      const { code } = await bundleWorkflowCode({
        workflowsPath: req.resolve('./test/harness/hello-workflow.ts'),
        logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
      });
      console.log(JSON.stringify({ bytes: code.length, loaded: bundlerPackages() > 0 }));
    `);
    expect(r).toMatchObject({ loaded: true });
    expect((r as { bytes: number }).bytes).toBeGreaterThan(1000);
  });
});
