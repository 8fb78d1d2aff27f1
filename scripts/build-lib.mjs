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
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root (this file is scripts/build-lib.mjs). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = path.join(ROOT, 'dist');
export const CLI_DIR = path.join(DIST, 'cli');
export const CLI_MAIN = path.join(CLI_DIR, 'main.js');
const CLI_INFO = path.join(CLI_DIR, 'build.json');
const CLI_MANIFEST = path.join(CLI_DIR, 'commands.json');
export const WORKFLOWS_ENTRY = path.join(ROOT, 'workflows', 'index.ts');
/** Workflow interceptors every bundle registers (workflows/interceptors.ts says why). */
export const WORKFLOW_INTERCEPTORS = path.join(ROOT, 'workflows', 'interceptors.ts');
export const WORKFLOW_BUNDLE = path.join(DIST, 'workflow-bundle.js');
const WORKFLOW_BUNDLE_INFO = path.join(DIST, 'workflow-bundle.json');

/** The folders the workflow bundle is built from (lint keeps sandbox imports inside them), and the
 * packages it pulls in: a change to any of them makes the bundle stale. */
const WORKFLOW_SOURCE_DIRS = ['workflows', 'src/shared'];
const WORKFLOW_PACKAGES = ['@temporalio/workflow', '@temporalio/worker', '@temporalio/common', 'zod'];

/** @typedef {Record<string, { size: number; mtimeMs: number; sha1: string }>} Fingerprint */

/** @param {string} file */
function sha1(file) {
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
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
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
  return changed === undefined ? undefined : `${changed} changed`;
}

/** Why the compiled CLI must be rebuilt, or undefined when it is current. */
export function cliStaleness() {
  return staleness(CLI_MAIN, CLI_INFO);
}

/**
 * Rewrites `import.meta.url|dirname|filename` to the source file's own location, so that code finding
 * files next to itself (config presets, bin/, the workflows) behaves the same compiled into dist/cli/.
 * @param {string} outdir
 * @returns {import('esbuild').Plugin}
 */
function sourceLocationPlugin(outdir) {
  return {
    name: 'source-location',
    setup(build) {
      build.onLoad({ filter: /\.(ts|mjs)$/ }, (args) => {
        if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        let contents = fs.readFileSync(args.path, 'utf8');
        if (contents.includes('import.meta.')) {
          const url = `new URL(${JSON.stringify(path.relative(outdir, args.path))}, import.meta.url)`;
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

/**
 * Compiles the CLI with esbuild into dist/cli/: ESM, packages left to node_modules, code splitting so
 * that each command module is its own chunk loaded by its dynamic import. Files are written chunks
 * first, entry last, each atomically, so a CLI starting meanwhile runs the old build or the new one.
 * @returns {Promise<void>}
 */
export async function buildCli() {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { main: path.join(ROOT, 'src/cli/main.ts') },
    outdir: CLI_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    metafile: true,
    write: false,
    logLevel: 'error',
    plugins: [sourceLocationPlugin(CLI_DIR)],
  });
  const files = [...result.outputFiles].sort(
    (a, b) => Number(a.path === CLI_MAIN) - Number(b.path === CLI_MAIN),
  );
  for (const f of files) writeAtomic(f.path, f.contents);
  // Which module owns which top-level command, and the help lines: `--help` then loads no module.
  /** @type {{ describeCommands: () => Promise<unknown[]> }} */
  const cli = await import(`${pathToFileURL(CLI_MAIN).href}?build=${Date.now()}`);
  writeAtomic(CLI_MANIFEST, JSON.stringify(await cli.describeCommands(), null, 1) + '\n');
  const sources = Object.keys(result.metafile.inputs).filter((f) => !f.includes('node_modules/'));
  writeAtomic(CLI_INFO, JSON.stringify({ sources: fingerprint(sources) }, null, 1) + '\n');
  // Chunks of earlier builds: kept a while for CLIs that started before this build, then removed.
  const keep = new Set(files.map((f) => path.basename(f.path)));
  const cutoff = Date.now() - 10 * 60_000;
  for (const name of fs.readdirSync(CLI_DIR)) {
    const file = path.join(CLI_DIR, name);
    if (!keep.has(name) && !name.endsWith('.json') && fs.statSync(file).mtimeMs < cutoff) fs.rmSync(file);
  }
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
    await buildCli();
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
  const { main } = await import(pathToFileURL(CLI_MAIN).href);
  return { main, manifest };
}

/** @returns {string[]} the workflow bundle's sources, relative to ROOT */
function workflowSources() {
  const files = [];
  for (const dir of WORKFLOW_SOURCE_DIRS) {
    for (const f of fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })) {
      if (f.endsWith('.ts')) files.push(path.join(dir, f));
    }
  }
  for (const pkg of WORKFLOW_PACKAGES) files.push(path.join('node_modules', pkg, 'package.json'));
  return files;
}

/** Why the prebuilt workflow bundle must be rebuilt, or undefined when it is current. */
export function workflowBundleStaleness() {
  const why = staleness(WORKFLOW_BUNDLE, WORKFLOW_BUNDLE_INFO);
  if (why !== undefined) return why;
  // A source file deleted or added since the build (an added one matters once something imports it).
  const info = readInfo(WORKFLOW_BUNDLE_INFO);
  const now = workflowSources().sort();
  const then = Object.keys(info?.sources ?? {}).sort();
  const added = now.find((f) => !then.includes(f));
  return added === undefined ? undefined : `${added} added`;
}

/** A bundler logger that keeps webpack's statistics out of the logs (they go nowhere). */
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/**
 * Bundles workflows/index.ts with Temporal's bundler and writes dist/workflow-bundle.js. The sources
 * are fingerprinted before bundling, so an edit made during the bundling marks the result stale.
 * @param {{ logger?: import('@temporalio/worker').BundleOptions['logger'] }} [opts]
 * @returns {Promise<string>} the bundle's path
 */
export async function buildWorkflowBundle(opts = {}) {
  const sources = fingerprint(workflowSources());
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_ENTRY,
    workflowInterceptorModules: [WORKFLOW_INTERCEPTORS],
    logger: opts.logger ?? quiet,
  });
  writeAtomic(WORKFLOW_BUNDLE, code);
  writeAtomic(WORKFLOW_BUNDLE_INFO, JSON.stringify({ sources }, null, 1) + '\n');
  return WORKFLOW_BUNDLE;
}
