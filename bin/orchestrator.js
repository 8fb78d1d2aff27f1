#!/usr/bin/env node
// The CLI runs as compiled JavaScript from dist/cli/, built by `npm install` (prepare) or `make install`.
// When a source changed since that build, it is recompiled first (esbuild, well under a second), so the
// CLI never runs stale code and tsx is never on this path.
//
// CommonJS (bin/package.json), as is dist/cli/main.cjs: every start pays for this file, and Node starts
// a CommonJS entry without its ESM loader, which `--help` then never needs. The freshness check here
// compares sizes and mtimes only; anything that differs goes to the full check in scripts/build-lib.mjs
// (content hashes, rebuild), loaded only then.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const CLI_DIR = path.join(__dirname, '..', 'dist', 'cli');
const CLI_MAIN = path.join(CLI_DIR, 'main.cjs');

/** A JSON file, or undefined when it cannot be read. */
function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** True when the build recorded its sources and each still has the size and mtime it had then. */
function unchanged() {
  const info = readJson(path.join(CLI_DIR, 'build.json'));
  if (!info || typeof info.sources !== 'object' || !fs.existsSync(CLI_MAIN)) return false;
  const root = path.join(__dirname, '..');
  for (const [rel, rec] of Object.entries(info.sources)) {
    const st = fs.statSync(path.join(root, rel), { throwIfNoEntry: false });
    if (!st || st.size !== rec.size || st.mtimeMs !== rec.mtimeMs) return false;
  }
  return true;
}

async function start() {
  if (unchanged()) {
    await require(CLI_MAIN).main(process.argv, readJson(path.join(CLI_DIR, 'commands.json')));
    return;
  }
  const { loadCli } = await import('../scripts/build-lib.mjs');
  const { main, manifest } = await loadCli();
  await main(process.argv, manifest);
}

start().catch((err) => {
  process.stderr.write(`orchestrator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
