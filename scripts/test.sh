#!/usr/bin/env bash
# `make test` after its prerequisites. The temporal tier starts first, in the background (its dev server
# comes up meanwhile), since it is by far the longest and spends much of its time waiting on timers,
# workers and its dev server; its output goes to a log. In the foreground, live: the static checks
# (lint, typecheck, format), then the server-free `unit` tier. Not the two at once: the unit tier's
# boundary test writes lint probes into src/ for a moment, which the checks would read. Then the
# temporal tier's log is printed and followed until it ends, and the one plain summary line CI reads.
#
# TEMPORAL_FORKS: how many temporal test files run at once on the one dev server (default 2, as in
# vitest.config.ts). Four, tried on a fresh clone, was no faster: the tier's summed test time doubled, as
# the two cores are busy beside the unit tier (docs/performance-log.md).
#
# Last, alone: the `quiet` project (test/quiet), tests that measure how close in time many processes
# start. Beside the tiers they would measure the load (vitest.config.ts).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=.orchestrator
mkdir -p "$OUT"
rm -f "$OUT"/test-unit.json "$OUT"/test-temporal.json "$OUT"/test-quiet.json "$OUT"/test-temporal.log \
  "$OUT"/check.json

tier() {
  npx vitest run --project "$1" --reporter=default --reporter=json --outputFile="$OUT/test-$1.json" "${@:2}"
}

tier temporal --poolOptions.forks.maxForks="${TEMPORAL_FORKS:-2}" >"$OUT/test-temporal.log" 2>&1 &
temporal_pid=$!

# The checks, each run even when an earlier one failed; their exit codes go to check.json for the summary.
codes=()
for step in lint typecheck format:check; do
  npm run --silent "$step"
  codes+=("\"$step\": $?")
done
printf '{ %s }\n' "$(IFS=,; echo "${codes[*]}")" >"$OUT/check.json"

# The unit tier without isolation: each of its two forks runs its files one after another in one module
# graph, rather than a fresh process and fresh imports per file. Alone, the tier took 40% less CPU
# (277 -> 168 s) and 25% less time (198 -> 150 s); that CPU goes to the temporal tier beside it. Safe for
# these tests (server-free; they share nothing but the process: the Temporal Runtime is installed once,
# guarded in workers/runtime-logger, and an environment variable a test sets is put back with
# vi.unstubAllEnvs); they passed with their files shuffled (docs/performance-log.md). The temporal tier
# stays isolated: each file runs its own Temporal workers and Runtime options. Vitest isolates per pool,
# not per project, so this is a flag of the run rather than of the project's config.
status=0
tier unit --no-isolate || status=$?

# The temporal tier's output so far, then the rest as it comes, until it exits.
tail -n +1 -f --pid="$temporal_pid" "$OUT/test-temporal.log"
wait "$temporal_pid" || status=$?

tier quiet || status=$?

node scripts/test-summary.mjs --checks "$OUT/check.json" "$OUT/test-unit.json" "$OUT/test-temporal.json" \
  "$OUT/test-quiet.json" || status=$?
exit "$status"
