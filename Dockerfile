# syntax=docker/dockerfile:1
# The worker image of docker-compose.yml (README: "Containers"): compiled JavaScript and prebuilt workflow
# bundles, production dependencies only, the `claude` CLI on PATH, run as a non-root user.
#
#   docker build -t orchestrator .
#   docker run --rm orchestrator --version
#
# Node 22: @anthropic-ai/claude-code asks for it (the project itself runs on Node 20 and later). Debian
# bookworm (glibc) because the native parts (Temporal's core bridge, DuckDB, claude) ship glibc builds.
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: every dependency, then `npm run build` ------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Dependencies first, in a layer of their own that only package.json or the lock invalidates. `npm install`,
# not `npm ci`: the lock is written without other platforms' optional packages (Makefile says why), which
# `npm ci` refuses; the lock still pins every version. Scripts wait until the sources are here: the root's
# `prepare` is the build itself.
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --ignore-scripts
COPY . .
# Dependencies' install scripts now (claude-code's puts the platform's native binary in place), then the
# build: dist/cli (the CLI), dist/workflow-bundle.js and, with --traced, dist/workflow-bundle-traced.js
# (so a worker polls at once, exporting traces or not), and dist/lib. The last line fails the build when
# the claude binary did not arrive.
RUN npm rebuild --no-audit --no-fund \
  && npm run build -- --traced \
  && node_modules/.bin/claude --version

# ---- prod: the same tree without dev dependencies ------------------------------------------------------
# Pruned in place so that every source and dist/ file keeps the size and mtime the build recorded: the CLI
# and the worker check their builds against them (scripts/build-lib.mjs) and would otherwise rebuild.
FROM build AS prod
RUN npm prune --omit=dev --no-audit --no-fund --ignore-scripts

# ---- runtime ------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# git: checkpoints are commits in a shadow repository. bubblewrap: agents' commands are confined with it
# when the container may create user namespaces (docker-compose.yml's `security_opt` says when); otherwise
# the worker says at start that it falls back. ca-certificates: the model API over TLS.
RUN apt-get update \
  && apt-get install -y --no-install-recommends git bubblewrap ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=prod /app /app
# claude-code is a dev dependency of the project (tests and the demo drive it); in the image it is the
# native binary its install step put in place, on PATH, where config/env.ts looks first.
COPY --from=build /app/node_modules/@anthropic-ai/claude-code/bin/claude.exe /usr/local/bin/claude
# State, outputs, workspaces, the checkpoint store and the agents' HOME live in volumes mounted here
# (docker-compose.yml); created owned by the `node` user (uid 1000) so new named volumes are too.
RUN mkdir -p /var/lib/orchestrator/state /var/lib/orchestrator/agent-home /srv/orchestrator/outputs \
    /srv/orchestrator/checkpoints /workspaces \
  && chown -R node:node /var/lib/orchestrator /srv/orchestrator /workspaces
# Small young generations (2 MiB semi-spaces instead of 16): with many concurrent runs the worker's RSS
# grows with them; this took 40-90 MiB off its peak at 100 runs in bench:fleet (docs/performance-log.md).
# Agents never see it: their environment is an allow-list (activities/sandbox/env.ts).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=2 \
    ORCHESTRATOR_HOME=/var/lib/orchestrator/state \
    ORCHESTRATOR_AGENT_HOME=/var/lib/orchestrator/agent-home \
    ORCHESTRATOR_OUTPUTS_DIR=/srv/orchestrator/outputs
# /app stays root's: the code a worker and its agents run cannot be changed by them.
USER node
WORKDIR /var/lib/orchestrator
ENTRYPOINT ["node", "/app/bin/orchestrator.js"]
CMD ["worker"]
