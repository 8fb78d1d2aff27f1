// Prints vitest's JSON results (one file per tier) as one plain closing line,
// `N passed, N failed, N skipped`, which CI reads. A tier whose results are missing counts as failed.
import fs from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const file of process.argv.slice(2)) {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    // A file that failed to load (syntax error, failing hook) has no failed test but is a failure.
    failed += (r.testResults ?? []).filter(
      (t) => t.status === 'failed' && t.assertionResults?.length === 0,
    ).length;
  } catch (err) {
    failed += 1;
    missing.push(`no test results at ${file}: ${err.message}`);
  }
}
for (const m of missing) console.log(m);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
