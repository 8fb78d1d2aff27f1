/**
 * Charging a ledger from an agent's meter, a little at a time: a run reads the meter of a running agent
 * several times (when it pauses on a budget, after each round, when it ends) and charges only what was
 * served since the last read, per served model, in exact micro-dollars. Project and team runs share it.
 *
 * Deterministic sandbox code: imports only src/shared/.
 */
import { charge, type Ledger } from './budget';

/** Token counts of a meter, with the Messages API field names, every kind present. */
export interface MeterUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** What a meter read returns (activities/meter `readMeter`), as far as charging needs it. */
export interface MeterReading {
  models: Record<string, { microUsd: number; usage: MeterUsage; pricedAs: string; unknownModel?: boolean }>;
}

/** Per served model: what has been charged from one meter so far. */
export type MeterCharged = Record<string, { microUsd: number; usage: MeterUsage }>;

export interface MeterChargeResult {
  ledger: Ledger;
  charged: MeterCharged;
  /** Micro-dollars charged by this call. */
  microUsd: number;
  /** Served models missing from the price table, with the model they were charged at. */
  unknown: Array<{ model: string; pricedAs: string }>;
}

const tokensOf = (u: MeterUsage) =>
  u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;

const ZERO: MeterUsage = {
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

/**
 * Charges what `reading` holds beyond `charged`, under keys derived from `key` (`<key>@<model>`, then
 * `<key>@<model>@<tokens charged before>`), so charging the same reading twice changes nothing. A reading
 * older than what was charged already (two reads that completed out of order) is ignored for that model:
 * a meter only grows.
 */
export function chargeFromMeter(
  ledger: Ledger,
  charged: MeterCharged,
  at: { key: string; phase: string; agent: string },
  reading: MeterReading,
): MeterChargeResult {
  let out = ledger;
  const next: MeterCharged = { ...charged };
  let microUsd = 0;
  for (const [model, row] of Object.entries(reading.models)) {
    const prev = Object.hasOwn(charged, model) ? charged[model]! : { microUsd: 0, usage: ZERO };
    const prevTokens = tokensOf(prev.usage);
    if (row.microUsd < prev.microUsd || tokensOf(row.usage) < prevTokens) continue;
    const usage: MeterUsage = {
      input_tokens: Math.max(0, row.usage.input_tokens - prev.usage.input_tokens),
      output_tokens: Math.max(0, row.usage.output_tokens - prev.usage.output_tokens),
      cache_creation_input_tokens: Math.max(
        0,
        row.usage.cache_creation_input_tokens - prev.usage.cache_creation_input_tokens,
      ),
      cache_read_input_tokens: Math.max(
        0,
        row.usage.cache_read_input_tokens - prev.usage.cache_read_input_tokens,
      ),
    };
    const delta = row.microUsd - prev.microUsd;
    if (delta === 0 && tokensOf(usage) === 0) continue;
    out = charge(out, {
      key: prevTokens === 0 ? `${at.key}@${model}` : `${at.key}@${model}@${prevTokens}`,
      phase: at.phase,
      agent: at.agent,
      model,
      usage,
      costUsd: delta / 1e6,
      microUsd: delta,
      ...(row.unknownModel ? { pricedAs: row.pricedAs } : {}),
    });
    next[model] = { microUsd: row.microUsd, usage: { ...row.usage } };
    microUsd += delta;
  }
  const unknown = Object.entries(reading.models)
    .filter(([, r]) => r.unknownModel)
    .map(([model, r]) => ({ model, pricedAs: r.pricedAs }));
  return { ledger: out, charged: next, microUsd, unknown };
}
