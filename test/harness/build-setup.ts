/**
 * Vitest global setup for the server-free tier: brings the compiled CLI (dist/cli) up to date once,
 * so that test files running bin/orchestrator.js in parallel do not each rebuild it.
 */
import { ensureCli } from '../../scripts/build-lib.mjs';

export default async function setup(): Promise<void> {
  await ensureCli();
}
