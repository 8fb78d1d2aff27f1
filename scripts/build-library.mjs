// @ts-check
/**
 * The package's library entry points (package.json `exports`), for other Node services:
 * - dist/lib/index.js + index.d.ts (`orchestrator`): definitions and the typed client operations;
 * - dist/lib/definitions.js + definitions.d.ts (`orchestrator/definitions`): names, messages, schemas,
 *   types; no I/O, safe in another service's workflow sandbox.
 * JavaScript by esbuild (ESM, packages left to node_modules), declarations bundled into one file per
 * entry by rollup-plugin-dts, so that consumers with `moduleResolution: node16` resolve every type
 * (tsc's own per-file declarations keep our extensionless relative imports, which node16 cannot follow).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { DIST, NODE_BUILD_OPTIONS, ROOT, fingerprint, firstChanged, writeAtomic } from './build-lib.mjs';

export const LIB_DIR = path.join(DIST, 'lib');
const LIB_INFO = path.join(LIB_DIR, 'build.json');
/** Entry name → source. */
export const LIB_ENTRIES = {
  index: 'src/client/index.ts',
  definitions: 'src/client/definitions.ts',
};

/** Why dist/lib must be rebuilt (`missing` or the first changed source), or undefined when current. */
export function libraryStaleness() {
  let info;
  try {
    info = JSON.parse(fs.readFileSync(LIB_INFO, 'utf8'));
  } catch {
    return 'missing';
  }
  for (const name of Object.keys(LIB_ENTRIES)) {
    for (const ext of ['.js', '.d.ts']) {
      if (!fs.existsSync(path.join(LIB_DIR, name + ext))) return 'missing';
    }
  }
  const changed = firstChanged(info.sources);
  return changed === undefined ? undefined : `${changed} changed`;
}

/** Builds dist/lib (JavaScript and bundled declarations). */
export async function buildLibrary() {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    ...NODE_BUILD_OPTIONS,
    entryPoints: Object.fromEntries(
      Object.entries(LIB_ENTRIES).map(([name, src]) => [name, path.join(ROOT, src)]),
    ),
    outdir: LIB_DIR,
    splitting: true,
    format: 'esm',
  });
  // Declarations: tsc writes them per file into a scratch folder, rollup-plugin-dts joins each entry's
  // into one file.
  const scratch = path.join(DIST, '.lib-types');
  fs.rmSync(scratch, { recursive: true, force: true });
  const tsc = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      path.join(ROOT, 'tsconfig.lib.json'),
      '--noEmit',
      'false',
      '--declaration',
      '--emitDeclarationOnly',
      '--incremental',
      'false',
      '--declarationDir',
      scratch,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (tsc.status !== 0) throw new Error(`tsc could not write declarations:\n${tsc.stdout}${tsc.stderr}`);
  const { rollup } = await import('rollup');
  const { dts } = await import('rollup-plugin-dts');
  const bundle = await rollup({
    input: Object.fromEntries(
      Object.entries(LIB_ENTRIES).map(([name, src]) => [
        name,
        path.join(scratch, src.replace(/\.ts$/, '.d.ts')),
      ]),
    ),
    plugins: [dts({ respectExternal: false })],
    onwarn: (w) => {
      throw new Error(`declarations: ${w.message}`);
    },
  });
  const { output } = await bundle.generate({ format: 'es', entryFileNames: '[name].d.ts' });
  await bundle.close();
  for (const f of result.outputFiles) writeAtomic(f.path, f.contents);
  for (const chunk of output) {
    if (chunk.type === 'chunk') writeAtomic(path.join(LIB_DIR, chunk.fileName), chunk.code);
  }
  fs.rmSync(scratch, { recursive: true, force: true });
  const sources = Object.keys(result.metafile.inputs).filter((f) => !f.includes('node_modules/'));
  writeAtomic(LIB_INFO, JSON.stringify({ sources: fingerprint(sources) }, null, 1) + '\n');
}
