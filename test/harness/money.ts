/**
 * Money checks for tests: what the local model server served by its own tally, and what a run's ledger
 * holds, both in integer micro-dollars so they compare exactly.
 */
import type { ModelServer } from '../../src/modelserver';
import type { Ledger } from '../../src/shared/budget';

export interface Served {
  microUsd: number;
  tokens: number;
  requests: number;
  /** Micro-dollars of each response, in arrival order. */
  responses: number[];
  /** Served model → micro-dollars. */
  models: Record<string, number>;
}

/** What the server served (successful answers only) from request index `since` on. */
export function servedSince(server: ModelServer, since: number): Served {
  const ok = server.requests
    .slice(since)
    .filter((r) => r.endpoint === 'messages' && r.status === 200 && r.usage);
  const models: Record<string, number> = {};
  for (const r of ok) models[r.responseModel!] = (models[r.responseModel!] ?? 0) + r.microUsd!;
  return {
    microUsd: ok.reduce((s, r) => s + r.microUsd!, 0),
    tokens: ok.reduce(
      (s, r) =>
        s +
        r.usage!.input_tokens +
        r.usage!.output_tokens +
        r.usage!.cache_creation_input_tokens +
        r.usage!.cache_read_input_tokens,
      0,
    ),
    requests: ok.length,
    responses: ok.map((r) => r.microUsd!),
    models,
  };
}

/** The ledger's total spend in micro-dollars, and per model. */
export function ledgerSpend(l: Ledger): { microUsd: number; models: Record<string, number> } {
  let microUsd = 0;
  const models: Record<string, number> = {};
  for (const agents of Object.values(l.spend))
    for (const byModel of Object.values(agents))
      for (const [model, row] of Object.entries(byModel)) {
        microUsd += row.microUsd;
        models[model] = (models[model] ?? 0) + row.microUsd;
      }
  return { microUsd, models };
}

/**
 * The model server's own tally (`GET /_tally`, as a client outside the test process would read it): total
 * micro-dollars served over every model. Compare differences taken before and after a case.
 */
export async function tallyMicroUsd(server: Pick<ModelServer, 'url'>): Promise<number> {
  const res = await fetch(`${server.url}/_tally`);
  if (!res.ok) throw new Error(`GET /_tally answered ${res.status}`);
  const tally = (await res.json()) as Record<string, { microUsd: number }>;
  return Object.values(tally).reduce((s, m) => s + m.microUsd, 0);
}

/**
 * Environment for a worker process (`spawnWorkerProcess`) whose agents talk to the local model server
 * through the worker's metering gateway, with their own HOME for Claude Code sessions.
 */
export function modelWorkerEnv(
  server: Pick<ModelServer, 'url'>,
  agentHome: string,
  apiKey = 'test-key',
): Record<string, string> {
  return {
    ORCHESTRATOR_AGENT_HOME: agentHome,
    ANTHROPIC_BASE_URL: server.url,
    ANTHROPIC_API_KEY: apiKey,
  };
}
