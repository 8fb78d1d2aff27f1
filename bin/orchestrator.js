#!/usr/bin/env node
// The CLI runs as compiled JavaScript from dist/cli/, built by `npm install` (prepare) or `make install`.
// When a source changed since that build, it is recompiled first (esbuild, well under a second), so the
// CLI never runs stale code and tsx is never on this path.
import { loadCli } from '../scripts/build-lib.mjs';

const { main, manifest } = await loadCli();
await main(process.argv, manifest);
