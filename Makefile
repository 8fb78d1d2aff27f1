# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.PHONY: install temporal sandbox browser test check unit demo clean cluster-server test-cluster

NPM_STAMP := node_modules/.install-stamp

# `npm install`, not `npm ci`: with this machine's npm config (omit-lockfile-registry-resolved) npm
# writes lock files without other platforms' optional packages, which its own `npm ci` then refuses.
# The lock still pins every version installed.
$(NPM_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

# `npm install` builds dist/ (the prepare script); this rebuilds it when a source changed since.
install: $(NPM_STAMP)
	node scripts/build.mjs

# Locates the Temporal CLI or builds it once into .tools/bin (reused afterwards).
temporal:
	@scripts/ensure-temporal.sh >/dev/null

# bubblewrap confines agents' commands (activities/sandbox). Installed when missing (as root, apt-get);
# without it the confinement tests fail, and this says so loudly rather than skipping them.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y bubblewrap >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y bubblewrap >/dev/null 2>&1; }; }; } || true
	@command -v bwrap >/dev/null 2>&1 || echo '*** bubblewrap (bwrap) is missing and could not be installed (apt-get install bubblewrap as root): agent commands are NOT sandboxed and test/workflow/confinement.test.ts will fail ***' >&2

# Debian's chromium drives the Web UI test (test/workflow/web-ui.test.ts), installed the same way; without
# it that test fails, and this says so loudly. After `sandbox`: `make test` makes both at once, and two
# apt-gets at a time would fight over dpkg's lock.
browser: | sandbox
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1; }; }; } || true
	@command -v chromium >/dev/null 2>&1 || echo '*** chromium is missing and could not be installed (apt-get install chromium as root): test/workflow/web-ui.test.ts will fail ***' >&2

check: install
	npm run --silent lint
	npm run --silent typecheck
	npm run --silent format:check

unit: install
	npx vitest run --project unit

# Two tiers (CONTRIBUTING.md): the server-free one and the one on a real dev server. The prerequisites
# (npm, the Go-built Temporal CLI, apt packages) are independent and made at once; scripts/test.sh then
# starts the temporal tier in the background and runs lint/typecheck/format and the unit tier meanwhile,
# prints the temporal tier's output after the unit tier's, and ends with the line CI reads.
# TEMPORAL_FORKS (default 2) sets how many temporal files run at once.
test:
	@$(MAKE) --no-print-directory -j4 install temporal sandbox browser
	@scripts/test.sh

# The full Temporal server (go.temporal.io/server, built once into .tools/ from its Go module) on a
# throwaway PostgreSQL cluster: scripts/cluster.sh installs Debian's postgresql when missing (as root,
# apt-get) or says loudly that it cannot. `make cluster-server` only builds the server.
cluster-server:
	@scripts/cluster.sh build

# The cluster suite (test/cluster) on that server; not part of `make test` (README: "A real cluster").
test-cluster: install temporal sandbox cluster-server
	npx vitest run --project cluster

demo: install temporal
	node bin/orchestrator.js demo

clean:
	rm -rf .orchestrator outputs
