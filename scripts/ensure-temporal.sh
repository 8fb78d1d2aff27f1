#!/usr/bin/env bash
# Locates the Temporal CLI (which embeds the real Temporal server as `temporal server start-dev`) or
# builds it from its Go module into the git-ignored .tools/bin/. Prints the binary's path on stdout;
# progress goes to stderr. Used by `make demo`, `make test`, CI and the test harness.
#
# Order: $TEMPORAL_CLI, then `temporal` on PATH, then .tools/bin/temporal, then `go install`.
# v1.5.1 is the newest tag whose go.mod has no `replace` directive, so `go install pkg@version` works.
set -euo pipefail

VERSION="${TEMPORAL_CLI_VERSION:-v1.5.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="$ROOT/.tools/bin"
say() { printf 'ensure-temporal: %s\n' "$*" >&2; }

if [ -n "${TEMPORAL_CLI:-}" ]; then
  if [ -x "$TEMPORAL_CLI" ]; then echo "$TEMPORAL_CLI"; exit 0; fi
  say "TEMPORAL_CLI=$TEMPORAL_CLI is not an executable file"
  exit 1
fi
if command -v temporal >/dev/null 2>&1; then
  command -v temporal
  exit 0
fi
if [ -x "$TOOLS_BIN/temporal" ]; then
  echo "$TOOLS_BIN/temporal"
  exit 0
fi

GO="$(command -v go || true)"
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; }
if [ -z "$GO" ]; then
  say "no Temporal CLI found and Go is not installed."
  say "Install the Temporal CLI (https://docs.temporal.io/cli#install) and put 'temporal' on PATH,"
  say "or set TEMPORAL_CLI=/path/to/temporal, or install Go so this script can build it."
  exit 1
fi

mkdir -p "$TOOLS_BIN"
say "building github.com/temporalio/cli/cmd/temporal@$VERSION into .tools/bin (first run only, a few minutes)..."
start=$(date +%s)
if ! GOBIN="$TOOLS_BIN" GOFLAGS="${GOFLAGS:--buildvcs=false}" "$GO" install \
  "github.com/temporalio/cli/cmd/temporal@$VERSION" >&2; then
  say "go install of temporal@$VERSION failed (see above). Set TEMPORAL_CLI to a prebuilt binary to skip the build."
  exit 1
fi
say "built in $(( $(date +%s) - start ))s: $TOOLS_BIN/temporal"
echo "$TOOLS_BIN/temporal"
