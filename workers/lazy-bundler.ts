/**
 * `@temporalio/worker` requires its workflow bundler (`lib/workflow/bundler.js`) when it loads, and that
 * file requires webpack, memfs and unionfs: about 100 modules and 90 ms of a worker's start on a quiet
 * machine, although a worker given a prebuilt bundle (dist/workflow-bundle.js, workers/bundle.ts) never
 * bundles. At load the SDK reads one value of that module, `defaultWorkflowInterceptorModules` (the
 * path of its log interceptor, compared with the worker's options); everything else is used only when
 * it bundles (`Worker.create` with `workflowsPath`, `bundleWorkflowCode`).
 *
 * {@link deferWorkflowBundler}, called before the SDK is first loaded, puts a stand-in for that module in
 * `require.cache` (which Node documents as replaceable): the one value at load, and the real module
 * loaded, replacing the stand-in, on the first use of anything else. `bundleWorkflowCode` is a function
 * that loads it when called, since importing the SDK from ESM reads every export of its index once.
 * When the SDK is already loaded, or cannot be resolved as expected, nothing changes.
 * test/unit/lazy-bundler.test.ts checks the stand-in against the SDK's real exports.
 */
import Module, { createRequire } from 'node:module';

/** The SDK file and the one value the SDK reads from it at load. */
const BUNDLER = '@temporalio/worker/lib/workflow/bundler.js';
const LOG_INTERCEPTOR = '@temporalio/worker/lib/workflow-log-interceptor';

type Exports = Record<string | symbol, unknown>;

/**
 * Seeds `require.cache` with the stand-in; returns false when it did not (the SDK's bundler is already
 * loaded, or not where expected).
 */
export function deferWorkflowBundler(): boolean {
  let file: string;
  let logInterceptor: string;
  const req = createRequire(import.meta.url);
  try {
    file = req.resolve(BUNDLER);
    logInterceptor = req.resolve(LOG_INTERCEPTOR);
  } catch {
    return false;
  }
  if (req.cache[file]) return false;
  let real: Exports | undefined;
  const load = (): Exports => {
    if (!real) {
      if (req.cache[file] === standIn) delete req.cache[file];
      real = req(file) as Exports;
    }
    return real;
  };
  const own: Exports = {
    defaultWorkflowInterceptorModules: [logInterceptor],
    bundleWorkflowCode: (...args: unknown[]) =>
      (load().bundleWorkflowCode as (...a: unknown[]) => unknown)(...args),
  };
  // As TypeScript's CommonJS output marks it: not enumerable.
  Object.defineProperty(own, '__esModule', { value: true, configurable: true });
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  standIn.exports = new Proxy(own, {
    get: (target, key) => (Object.hasOwn(target, key) ? target[key] : load()[key]),
    has: (target, key) => Object.hasOwn(target, key) || key in load(),
    ownKeys: () => Reflect.ownKeys(load()),
    getOwnPropertyDescriptor: (target, key) =>
      Object.hasOwn(target, key)
        ? Reflect.getOwnPropertyDescriptor(target, key)
        : Reflect.getOwnPropertyDescriptor(load(), key) && {
            value: load()[key],
            enumerable: true,
            configurable: true,
            writable: false,
          },
  });
  req.cache[file] = standIn;
  return true;
}
