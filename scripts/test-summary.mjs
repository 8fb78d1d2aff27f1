// Prints vitest's JSON result as one plain closing line, `N passed, N failed, N skipped`, which CI reads.
import fs from 'node:fs';

const file = process.argv[2];
try {
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
} catch (err) {
  console.log(`0 passed, 1 failed (no test results at ${file}: ${err.message})`);
}
