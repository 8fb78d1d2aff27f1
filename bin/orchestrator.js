#!/usr/bin/env node
// The CLI runs as compiled JavaScript from dist/cli/, built by `npm install` (prepare) or `make install`.
// When a source changed since that build, it is recompiled first (esbuild, well under a second), so the
// CLI never runs stale code and tsx is never on this path.
//
// CommonJS (bin/package.json), as is dist/cli/main.cjs: every start pays for this file, and Node starts
// a CommonJS entry without its ESM loader, which `--help` then never needs. The freshness check here
// compares sizes and mtimes only; anything that differs goes to the full check in scripts/build-lib.mjs
// (content hashes, rebuild), loaded only then. `--help` itself is printed from the build's help.json
// when it fits this output, without loading main.cjs (commander) at all.
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
  // Joined by hand: path.join's normalising is a measurable part of `--help` over 100-odd sources.
  const root = path.join(__dirname, '..') + path.sep;
  for (const [rel, rec] of Object.entries(info.sources)) {
    const st = fs.statSync(root + rel, { throwIfNoEntry: false });
    if (!st || st.size !== rec.size || st.mtimeMs !== rec.mtimeMs) return false;
  }
  return true;
}

/**
 * Whether stdout may be a terminal: a character device other than /dev/null. Asked without
 * process.stdout, whose creation loads Node's stream modules (about as long as the rest of `--help`).
 */
function stdoutMayBeTerminal() {
  try {
    const st = fs.fstatSync(1);
    return st.isCharacterDevice() && st.rdev !== fs.statSync('/dev/null').rdev;
  } catch {
    return true;
  }
}

/** Writes all of `text` to fd 1; a reader that stopped early (`--help | head -1`) ends it quietly. */
function writeStdout(text) {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length;) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (err) {
      if (err.code === 'EPIPE') return;
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // a full non-blocking pipe
    }
  }
}

/**
 * Prints `orchestrator --help` as the build wrote it (dist/cli/help.json, src/cli/main.ts prerenderHelp)
 * when that is what commander would print here: at its default 80 columns (not a terminal, or an
 * 80-column one) or on a terminal wide enough that nothing wraps. False when it did not (other
 * arguments, another width, no help.json): main.cjs then runs as usual.
 */
function printedPrerenderedHelp() {
  const args = process.argv.slice(2);
  if (args.length !== 1 || (args[0] !== '--help' && args[0] !== '-h')) return false;
  const help = readJson(path.join(CLI_DIR, 'help.json'));
  if (!help || typeof help.plain !== 'string') return false;
  if (!stdoutMayBeTerminal()) {
    writeStdout(help.plain);
    return true;
  }
  const width = process.stdout.isTTY ? process.stdout.columns : undefined;
  const wide = help.wide && typeof help.wide.text === 'string' && width >= help.wide.from;
  if (width !== undefined && width !== 80 && !wide) return false;
  process.stdout.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
  });
  process.stdout.write(wide ? help.wide.text : help.plain);
  return true;
}

async function start() {
  if (unchanged()) {
    if (printedPrerenderedHelp()) return;
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
