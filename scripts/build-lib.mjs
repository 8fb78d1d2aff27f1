// @ts-check
/**
 * The build outputs and how to tell whether they are current. Plain JavaScript because it runs before
 * anything is compiled (bin/orchestrator.js, `npm install`'s prepare step) and must not need tsx.
 *
 * - dist/cli/: the CLI compiled by esbuild (one chunk per command module, loaded only when it runs).
 * - dist/workflow-bundle.js: the workflow bundle the worker loads instead of bundling at every start.
 *
 * Each output records the sources it was built from (dist/…json). An output is current when every
 * recorded source still has its recorded size and mtime, or failing that its recorded content hash (a
 * checkout touches mtimes without changing content). Developers edit sources all the time, so both
 * outputs are checked at every use and rebuilt when stale, never silently used out of date.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is scripts/build-lib.mjs). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = path.join(ROOT, 'dist');
export const CLI_DIR = path.join(DIST, 'cli');
export const CLI_MAIN = path.join(CLI_DIR, 'main.cjs');
const CLI_INFO = path.join(CLI_DIR, 'build.json');
const CLI_MANIFEST = path.join(CLI_DIR, 'commands.json');
/** `--help` as the CLI prints it (src/cli/main.ts prerenderHelp), read by bin/orchestrator.js. */
export const CLI_HELP = path.join(CLI_DIR, 'help.json');
export const WORKFLOWS_ENTRY = path.join(ROOT, 'workflows', 'index.ts');
/** Loaded once per workflow thread and shared by its workflows (workflows/preload.ts says what and why). */
export const WORKFLOW_PRELOAD = path.join(ROOT, 'workflows', 'preload.ts');
/** Workflow interceptors every bundle registers (workflows/interceptors.ts says why). */
export const WORKFLOW_INTERCEPTORS = path.join(ROOT, 'workflows', 'interceptors.ts');
export const WORKFLOW_BUNDLE = path.join(DIST, 'workflow-bundle.js');
const WORKFLOW_BUNDLE_INFO = path.join(DIST, 'workflow-bundle.json');
/**
 * The traced bundle (a worker exporting OpenTelemetry traces runs it): the same workflows plus Temporal's
 * OpenTelemetry workflow interceptors and ours (workflows/otel-interceptors.ts). Built on first use, not
 * by `npm run build`: an untraced worker never pays for it.
 */
export const TRACED_WORKFLOW_BUNDLE = path.join(DIST, 'workflow-bundle-traced.js');
const TRACED_WORKFLOW_BUNDLE_INFO = path.join(DIST, 'workflow-bundle-traced.json');
/** The traced bundle's interceptor modules, after the default ones (ours must run inside Temporal's). */
export const TRACING_WORKFLOW_INTERCEPTORS = [
  '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors',
  path.join(ROOT, 'workflows', 'otel-interceptors.ts'),
];
const TRACING_PACKAGES = [
  '@temporalio/interceptors-opentelemetry',
  '@opentelemetry/api',
  '@opentelemetry/sdk-trace-base',
];

/** The folders the workflow bundle is built from (lint keeps sandbox imports inside them), and the
 * packages it pulls in: a change to any of them makes the bundle stale. */
const WORKFLOW_SOURCE_DIRS = ['workflows', 'src/shared'];
const WORKFLOW_PACKAGES = ['@temporalio/workflow', '@temporalio/worker', '@temporalio/common', 'zod'];

/** @typedef {Record<string, { size: number; mtimeMs: number; sha1: string }>} Fingerprint */

/**
 * Loaded only when a content hash is needed (a build, or a source whose mtime moved): node:crypto's
 * loading is a noticeable part of the CLI's startup otherwise.
 * @param {string} file
 */
function sha1(file) {
  /** @type {typeof import('node:crypto')} */
  const crypto = createRequire(import.meta.url)('node:crypto');
  return crypto.createHash('sha1').update(fs.readFileSync(file)).digest('hex');
}

/**
 * Size, mtime and content hash of each file (paths relative to ROOT).
 * @param {string[]} files
 * @returns {Fingerprint}
 */
export function fingerprint(files) {
  /** @type {Fingerprint} */
  const out = {};
  for (const rel of [...new Set(files)].sort()) {
    const abs = path.join(ROOT, rel);
    const st = fs.statSync(abs);
    out[rel] = { size: st.size, mtimeMs: st.mtimeMs, sha1: sha1(abs) };
  }
  return out;
}

/**
 * The first recorded source that is missing or changed, or undefined when all are as recorded.
 * @param {Fingerprint} recorded
 * @returns {string | undefined}
 */
export function firstChanged(recorded) {
  for (const [rel, rec] of Object.entries(recorded)) {
    const abs = path.join(ROOT, rel);
    let st;
    try {
      st = fs.statSync(abs);
    } catch {
      return rel;
    }
    if (st.size !== rec.size) return rel;
    if (st.mtimeMs !== rec.mtimeMs && sha1(abs) !== rec.sha1) return rel;
  }
  return undefined;
}

/**
 * Writes a file so that a concurrent reader sees the old content or the new, never a partial file.
 * @param {string} file
 * @param {string | Uint8Array} data
 */
export function writeAtomic(file, data) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/**
 * @param {string} file
 * @returns {{ sources: Fingerprint } | undefined}
 */
function readInfo(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Why an output must be rebuilt (`missing`, or the first changed source), or undefined when current.
 * @param {string} output
 * @param {string} infoFile
 * @returns {string | undefined}
 */
function staleness(output, infoFile) {
  const info = readInfo(infoFile);
  if (!info || !fs.existsSync(output)) return 'missing';
  const changed = firstChanged(info.sources);
  if (changed !== undefined) return `${changed} changed`;
  refreshMtimes(infoFile, info);
  return undefined;
}

/**
 * Records the current mtimes of sources whose content is unchanged (a checkout, `touch`), so that the
 * next start's size-and-mtime check (bin/orchestrator.js) passes without hashing them again. Each file
 * is statted before it is hashed: an edit after the stat moves its mtime past the one recorded here.
 * @param {string} infoFile
 * @param {{ sources: Fingerprint }} info
 */
function refreshMtimes(infoFile, info) {
  let moved = false;
  for (const [rel, rec] of Object.entries(info.sources)) {
    const abs = path.join(ROOT, rel);
    const st = fs.statSync(abs, { throwIfNoEntry: false });
    if (!st || st.mtimeMs === rec.mtimeMs || st.size !== rec.size || sha1(abs) !== rec.sha1) continue;
    rec.mtimeMs = st.mtimeMs;
    moved = true;
  }
  try {
    if (moved) writeAtomic(infoFile, JSON.stringify(info, null, 1) + '\n');
  } catch {
    // A read-only install: the next start hashes again, which is correct, only slower.
  }
}

/** Why the compiled CLI must be rebuilt, or undefined when it is current. */
export function cliStaleness() {
  return staleness(CLI_MAIN, CLI_INFO);
}

/**
 * Rewrites `import.meta.url|dirname|filename` to the source file's own location, so that code finding
 * files next to itself (config presets, bin/, the workflows) behaves the same compiled into dist/cli/.
 * In CommonJS output (main.cjs) the compiled file's own URL comes from `__filename`.
 * @param {string} outdir
 * @param {'esm' | 'cjs'} [format]
 * @returns {import('esbuild').Plugin}
 */
function sourceLocationPlugin(outdir, format = 'esm') {
  const self = format === 'cjs' ? 'require("node:url").pathToFileURL(__filename)' : 'import.meta.url';
  return {
    name: 'source-location',
    setup(build) {
      build.onLoad({ filter: /\.(ts|mjs)$/ }, (args) => {
        if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        let contents = fs.readFileSync(args.path, 'utf8');
        if (contents.includes('import.meta.')) {
          const url = `new URL(${JSON.stringify(path.relative(outdir, args.path))}, ${self})`;
          contents = contents
            .replace(/\bimport\.meta\.url\b/g, `${url}.href`)
            .replace(/\bimport\.meta\.filename\b/g, `decodeURIComponent(${url}.pathname)`)
            .replace(
              /\bimport\.meta\.dirname\b/g,
              `decodeURIComponent(new URL('.', ${url}).pathname).replace(/\\/$/, '')`,
            );
        }
        return { contents, loader: args.path.endsWith('.ts') ? 'ts' : 'js' };
      });
    },
  };
}

/** What the command modules call to require a CommonJS package (defined by each file's banner). */
const CJS_REQUIRE = '__orchestratorRequire';

/**
 * The nearest package.json of a file: its `type` says how Node loads a `.js` file.
 * @param {string} file
 * @returns {string | undefined}
 */
function packageType(file) {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) return JSON.parse(fs.readFileSync(pkg, 'utf8')).type;
  }
  return undefined;
}

/**
 * The command modules are ESM, and Node's ESM loader is slow with CommonJS packages: it resolves every
 * import through the ESM resolver and reads and lexes every CommonJS file (and each file it re-exports,
 * which for the Temporal SDK is hundreds) to find its export names, before it loads them again with the
 * CommonJS loader. A worker's start spent about a third of its module loading there. So a package that is
 * plain CommonJS (import and require resolve to the same CommonJS file: one module instance either way,
 * no dual-package hazard) is required instead; ESM and dual packages are still imported.
 * @returns {import('esbuild').Plugin}
 */
function requireCommonJsPackagesPlugin() {
  const req = createRequire(import.meta.url);
  /** @type {Map<string, boolean>} */
  const plainCjs = new Map();
  /** @param {string} spec */
  const isPlainCjs = (spec) => {
    let known = plainCjs.get(spec);
    if (known === undefined) {
      try {
        const viaRequire = req.resolve(spec);
        const viaImport = fileURLToPath(import.meta.resolve(spec));
        known =
          viaRequire === viaImport &&
          (viaRequire.endsWith('.cjs') ||
            (viaRequire.endsWith('.js') && packageType(viaRequire) !== 'module'));
      } catch {
        known = false; // only one of the two resolves (an ESM-only package): imported as it was
      }
      plainCjs.set(spec, known);
    }
    return known;
  };
  return {
    name: 'require-commonjs-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.kind !== 'import-statement' || args.path.startsWith('node:') || !isPlainCjs(args.path)) {
          return undefined;
        }
        return { path: args.path, namespace: 'cjs-package' };
      });
      build.onLoad({ filter: /.*/, namespace: 'cjs-package' }, (args) => ({
        contents: `module.exports = ${CJS_REQUIRE}(${JSON.stringify(args.path)});\n`,
        loader: 'js',
      }));
    },
  };
}

/** The packages the command modules' build compiles in rather than importing from node_modules. */
const BUNDLED_CLI_PACKAGES = ['zod'];

/**
 * zod is compiled into the command modules' shared chunks instead of imported from node_modules. It is
 * an ESM package of 95 files, and Node's ESM loader resolves, reads, compiles and links each one:
 * at a worker's start that was a tenth of its module loading (issue 12 item 3, docs/performance-log.md).
 * One copy serves every command module (code splitting puts it in a chunk they share); zod's classes
 * check `instanceof` by trait and keep their registry on globalThis, so schemas and errors from it and
 * from the node_modules copy other packages load agree. Its translations (`z.locales`, 64 of those files)
 * are left out but English, which zod sets itself on the first schema built (nothing here configures
 * another locale). Its package.json is one of the CLI's sources (buildCli records it): an upgrade rebuilds.
 * @returns {import('esbuild').Plugin}
 */
function bundledPackagesPlugin() {
  const bundled = new RegExp(`^(${BUNDLED_CLI_PACKAGES.join('|')})(/|$)`);
  return {
    name: 'bundled-packages',
    setup(build) {
      build.onResolve({ filter: bundled }, (args) => ({
        path: fileURLToPath(import.meta.resolve(args.path)),
      }));
      build.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
        contents: 'export { default as en } from "./en.js";\n',
        loader: 'js',
        resolveDir: path.dirname(args.path),
      }));
    },
  };
}

/** The CLI's entry, and the modules it loads only when needed (each an entry of the ESM build). */
const CLI_ENTRY = path.join(ROOT, 'src/cli/main.ts');

/**
 * The modules main.ts imports dynamically, found in its source (`import('./x')`), relative to src/cli.
 * @returns {string[]}
 */
function lazyCliModules() {
  const src = fs.readFileSync(CLI_ENTRY, 'utf8');
  return [...new Set([...src.matchAll(/\bimport\(\s*'(\.\/[^']+)'\s*\)/g)].map((m) => m[1] ?? ''))];
}

/**
 * What every esbuild build of ours shares (the CLI, the library entry points): Node 20 code with its
 * packages left to node_modules, linked source maps, outputs returned to be written atomically.
 */
export const NODE_BUILD_OPTIONS = /** @type {const} */ ({
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  metafile: true,
  write: false,
  logLevel: 'error',
});

/**
 * Compiles the CLI with esbuild into dist/cli/, in two builds:
 *
 * - the command modules (and the other modules main.ts imports lazily) as ESM with code splitting, so
 *   each is its own file loaded only when its command runs, sharing chunks;
 * - main.ts alone as one CommonJS file (main.cjs) whose lazy `import()`s name those files. Starting
 *   the CLI (and `--help`, which needs no command module) then reads one file of ours and goes through
 *   Node's CommonJS loader, cheaper at startup than the ESM loader's resolution and linking.
 *
 * Packages stay in node_modules. Files are written chunks first, main.cjs last, each atomically, so a
 * CLI starting meanwhile runs the old build or the new one.
 * @returns {Promise<void>}
 */
export async function buildCli() {
  const esbuild = await import('esbuild');
  const common = /** @type {const} */ ({ ...NODE_BUILD_OPTIONS, outdir: CLI_DIR });
  const cliSrc = path.dirname(CLI_ENTRY);
  const lazy = lazyCliModules();
  /** @type {Record<string, string>} */
  const entryPoints = {};
  for (const spec of lazy) entryPoints[path.basename(spec)] = path.join(cliSrc, `${spec}.ts`);
  const modules = await esbuild.build({
    ...common,
    entryPoints,
    entryNames: '[name]-[hash]',
    splitting: true,
    format: 'esm',
    banner: {
      js: `import { createRequire as __orchestratorCreateRequire } from 'node:module';\nconst ${CJS_REQUIRE} = __orchestratorCreateRequire(import.meta.url);`,
    },
    plugins: [sourceLocationPlugin(CLI_DIR), bundledPackagesPlugin(), requireCommonJsPackagesPlugin()],
  });
  /** @type {Map<string, string>} source (relative to ROOT) -> output file name */
  const outputOf = new Map();
  for (const [out, meta] of Object.entries(modules.metafile.outputs)) {
    if (meta.entryPoint) outputOf.set(path.normalize(meta.entryPoint), path.basename(out));
  }
  // commander is bundled into main.cjs (every start needs it: one file to compile rather than a package
  // to resolve), and its `node:child_process` (Node initialises net, streams and more for it; commander
  // spawns only for executable subcommands, which we do not have) is loaded on first use. The command
  // modules import their own commander from node_modules: they pass it Option objects and throw its
  // errors, which commander handles by shape and code, not by class.
  const { packages: _all, ...mainOptions } = common;
  const main = await esbuild.build({
    ...mainOptions,
    entryPoints: { main: CLI_ENTRY },
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    plugins: [
      sourceLocationPlugin(CLI_DIR, 'cjs'),
      {
        name: 'lazy-child-process',
        setup(build) {
          // Every other package stays in node_modules, as in the modules' build.
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path === 'commander' || args.path.startsWith('node:') ? undefined : { external: true },
          );
          build.onResolve({ filter: /^node:child_process$/ }, (args) =>
            args.importer.includes(`${path.sep}node_modules${path.sep}commander${path.sep}`)
              ? { path: 'lazy-child-process', namespace: 'lazy-child-process' }
              : undefined,
          );
          build.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
            contents:
              'let cp;\nmodule.exports = new Proxy({}, { get: (_, k) => (cp ??= require("node:child_process"))[k] });\n',
            loader: 'js',
          }));
        },
      },
      {
        name: 'lazy-modules',
        setup(build) {
          // main.ts's own lazy imports name the ESM build's file for that module.
          build.onResolve({ filter: /^\.\// }, (args) => {
            if (args.importer !== CLI_ENTRY || args.kind !== 'dynamic-import') return undefined;
            const rel = path.relative(ROOT, path.join(cliSrc, `${args.path}.ts`));
            const out = outputOf.get(rel);
            if (!out) return { errors: [{ text: `no compiled module for ${args.path}` }] };
            return { path: `./${out}`, external: true };
          });
        },
      },
    ],
  });
  const files = [...modules.outputFiles, ...main.outputFiles].sort(
    (a, b) => Number(a.path === CLI_MAIN) - Number(b.path === CLI_MAIN),
  );
  for (const f of files) writeAtomic(f.path, f.contents);
  // Which module owns which top-level command, and the help lines: `--help` then loads no module.
  const req = createRequire(import.meta.url);
  delete req.cache[CLI_MAIN];
  /** @type {{ describeCommands: () => Promise<unknown[]>; prerenderHelp: (m: unknown[]) => Promise<unknown> }} */
  const cli = req(CLI_MAIN);
  const manifest = await cli.describeCommands();
  writeAtomic(CLI_MANIFEST, JSON.stringify(manifest, null, 1) + '\n');
  // `orchestrator --help` itself, which bin/orchestrator.js then prints without loading main.cjs.
  writeAtomic(CLI_HELP, JSON.stringify(await cli.prerenderHelp(manifest)) + '\n');
  const sources = [...Object.keys(modules.metafile.inputs), ...Object.keys(main.metafile.inputs)].filter(
    // Packages and virtual modules (`namespace:path`, the lazy child_process above) are no sources.
    (f) => !f.includes('node_modules/') && !/^[\w-]+:/.test(f),
  );
  // A bundled package's version is: upgrading it rebuilds the CLI.
  for (const pkg of BUNDLED_CLI_PACKAGES) sources.push(path.join('node_modules', pkg, 'package.json'));
  writeAtomic(CLI_INFO, JSON.stringify({ sources: fingerprint(sources) }, null, 1) + '\n');
  // Chunks of earlier builds: kept a while for CLIs that started before this build, then removed.
  const keep = new Set(files.map((f) => path.basename(f.path)));
  const cutoff = Date.now() - 10 * 60_000;
  for (const name of fs.readdirSync(CLI_DIR)) {
    // A concurrent build's temporary files come and go (renamed into place): never ours to remove.
    if (keep.has(name) || name.endsWith('.json') || name.endsWith('.tmp')) continue;
    const file = path.join(CLI_DIR, name);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st && st.mtimeMs < cutoff) fs.rmSync(file, { force: true });
  }
}

/**
 * Builds the CLI in a Node process of its own. Vitest loads this file through vite-node (the test tiers'
 * global setups), which has no `import.meta.resolve`, and the build's plugins resolve packages as Node's
 * ESM loader does: there, a build failed, and a plugin that only asks would have built a different CLI.
 */
function buildCliInNode() {
  const script = `import(${JSON.stringify(import.meta.url)}).then((m) => m.buildCli())`;
  const r = createRequire(import.meta.url)('node:child_process').spawnSync(
    process.execPath,
    ['--input-type=module', '-e', script],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`the CLI build failed (${r.status ?? r.signal}): ${r.stderr}`);
}

/**
 * Makes sure dist/cli is current before bin/orchestrator.js loads it. When it is stale and esbuild is
 * not installed (a production install), the CLI built at install time runs, with a warning.
 * @returns {Promise<void>}
 */
export async function ensureCli() {
  const why = cliStaleness();
  if (why === undefined) return;
  try {
    if (typeof import.meta.resolve === 'function') await buildCli();
    else buildCliInNode();
  } catch (err) {
    if (why === 'missing') throw err;
    process.stderr.write(
      `orchestrator: cannot rebuild the CLI (${why}): ${String(err)}; running the last build\n`,
    );
  }
}

/**
 * Loads the compiled CLI (rebuilt first when stale) and its command manifest, for bin/orchestrator.js.
 * @returns {Promise<{ main: (argv: string[], manifest?: unknown[]) => Promise<void>; manifest: unknown[] | undefined }>}
 */
export async function loadCli() {
  await ensureCli();
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(CLI_MANIFEST, 'utf8'));
  } catch {
    manifest = undefined; // every command module is loaded instead: slower, same behaviour
  }
  /** @type {{ main: (argv: string[], manifest?: unknown[]) => Promise<void> }} */
  const { main } = createRequire(import.meta.url)(CLI_MAIN);
  return { main, manifest };
}

/**
 * @param {boolean} [traced]
 * @returns {string[]} the workflow bundle's sources, relative to ROOT
 */
function workflowSources(traced = false) {
  const files = [];
  for (const dir of WORKFLOW_SOURCE_DIRS) {
    for (const f of fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })) {
      // test/unit/boundary.test.ts lints probe files it writes into src/shared/ for a moment: no
      // workflow imports them, and counting them would make every worker starting meanwhile (the
      // temporal tier runs beside the unit tier) bundle again, twice.
      if (f.endsWith('.ts') && !path.basename(f).startsWith('__lint_probe_')) files.push(path.join(dir, f));
    }
  }
  for (const pkg of [...WORKFLOW_PACKAGES, ...(traced ? TRACING_PACKAGES : [])])
    files.push(path.join('node_modules', pkg, 'package.json'));
  // How the bundle is built (buildWorkflowBundle below) is one of its sources too.
  files.push(path.relative(ROOT, fileURLToPath(import.meta.url)));
  return files;
}

/**
 * Why the prebuilt workflow bundle (or the traced one) must be rebuilt, or undefined when it is current.
 * @param {{ traced?: boolean }} [opts]
 */
export function workflowBundleStaleness(opts = {}) {
  const [bundle, infoFile] = opts.traced
    ? [TRACED_WORKFLOW_BUNDLE, TRACED_WORKFLOW_BUNDLE_INFO]
    : [WORKFLOW_BUNDLE, WORKFLOW_BUNDLE_INFO];
  const why = staleness(bundle, infoFile);
  if (why !== undefined) return why;
  // A source file deleted or added since the build (an added one matters once something imports it).
  const info = readInfo(infoFile);
  const now = workflowSources(opts.traced).sort();
  const then = Object.keys(info?.sources ?? {}).sort();
  const added = now.find((f) => !then.includes(f));
  return added === undefined ? undefined : `${added} added`;
}

/**
 * `code` with every character outside ASCII written as a `\u` escape. In the workflow bundle they stand
 * only in strings, templates and comments (our messages' dashes and arrows), where the escape means the
 * same character. One of them makes V8 hold the whole 2.4 MB source two bytes a character: every worker
 * start then decodes, hashes (the SDK's build id), compiles and copies to its workflow thread twice the
 * bytes. A backslash before such a character (an identity escape, `\—`) becomes part of its escape.
 * @param {string} code
 * @returns {string}
 */
export function asciiOnly(code) {
  return code.replace(/(\\*)([^\x00-\x7f])/g, (_, slashes, ch) => {
    const kept = slashes.length % 2 === 1 ? slashes.slice(1) : slashes;
    return `${kept}\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** A bundler logger that keeps webpack's statistics out of the logs (they go nowhere). */
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/**
 * Bundles workflows/index.ts with Temporal's bundler and writes dist/workflow-bundle.js (with `traced`,
 * dist/workflow-bundle-traced.js). The sources are fingerprinted before bundling, so an edit made during
 * the bundling marks the result stale.
 * @param {{ logger?: import('@temporalio/worker').BundleOptions['logger']; traced?: boolean }} [opts]
 * @returns {Promise<string>} the bundle's path
 */
export async function buildWorkflowBundle(opts = {}) {
  const traced = opts.traced ?? false;
  const sources = fingerprint(workflowSources(traced));
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_ENTRY,
    workflowInterceptorModules: [WORKFLOW_INTERCEPTORS, ...(traced ? TRACING_WORKFLOW_INTERCEPTORS : [])],
    // zod once per workflow thread rather than once per cached workflow (workflows/preload.ts).
    preloadModules: [WORKFLOW_PRELOAD],
    logger: opts.logger ?? quiet,
    // The SDK requires an inline source map (it maps workflow stack traces with it) but reads only its
    // mappings: without the sources' text the bundle is 2.1 MB rather than 3.9 MB, and every worker
    // start decodes and parses that much less before polling.
    webpackConfigHook: (config) => ({ ...config, devtool: 'inline-nosources-source-map' }),
  });
  const [bundle, infoFile] = traced
    ? [TRACED_WORKFLOW_BUNDLE, TRACED_WORKFLOW_BUNDLE_INFO]
    : [WORKFLOW_BUNDLE, WORKFLOW_BUNDLE_INFO];
  writeAtomic(bundle, asciiOnly(code));
  writeAtomic(infoFile, JSON.stringify({ sources }, null, 1) + '\n');
  return bundle;
}
