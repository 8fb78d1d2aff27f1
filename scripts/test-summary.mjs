// Prints vitest's JSON results (one file per tier) as one plain closing line,
// `N passed, N failed, N skipped`, which CI reads. A tier whose results are missing counts as failed.
// `--checks <file>`: the static checks' exit codes (scripts/test.sh writes `{ "lint": 0, ... }`); each
// check that failed, or a missing file, counts as one failure and is named above the line.
// Each failed test is named above the line with its file and the first line of its message, so the tail
// of a CI log says what failed without the whole log. Exits 1 when anything failed.
import fs from 'node:fs';
import path from 'node:path';

let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
const failures = [];
const args = process.argv.slice(2);
const checksAt = args.indexOf('--checks');
const checksFile = checksAt >= 0 ? args.splice(checksAt, 2)[1] : undefined;
if (checksFile !== undefined) {
  try {
    const codes = JSON.parse(fs.readFileSync(checksFile, 'utf8'));
    for (const [step, code] of Object.entries(codes)) {
      if (code === 0) continue;
      failed += 1;
      missing.push(`${step} failed (exit ${code}): see its output above`);
    }
  } catch (err) {
    failed += 1;
    missing.push(`no check results at ${checksFile}: ${err.message}`);
  }
}
for (const file of args) {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    for (const t of r.testResults ?? []) {
      const file = path.relative(process.cwd(), t.name ?? '?');
      for (const a of t.assertionResults ?? []) {
        if (a.status !== 'failed') continue;
        const first = String(a.failureMessages?.[0] ?? '')
          .split('\n')[0]
          .slice(0, 300);
        failures.push(`FAILED ${file} > ${a.fullName ?? a.title}: ${first}`);
      }
      if (t.status === 'failed' && (t.assertionResults?.length ?? 0) === 0) {
        failures.push(
          `FAILED ${file} (did not load): ${String(t.message ?? '')
            .split('\n')[0]
            .slice(0, 300)}`,
        );
      }
    }
    // A file that failed to load (syntax error, failing hook) has no failed test but is a failure.
    failed += (r.testResults ?? []).filter(
      (t) => t.status === 'failed' && t.assertionResults?.length === 0,
    ).length;
  } catch (err) {
    failed += 1;
    missing.push(`no test results at ${file}: ${err.message}`);
  }
}
for (const m of [...failures, ...missing]) console.log(m);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0) process.exitCode = 1;
