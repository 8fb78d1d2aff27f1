/**
 * Model prices (USD per million tokens), as published for the models the CLI and the API serve. Costs are
 * always computed on the model the *response* names: the CLI may serve another model than the one asked for.
 */
import { z } from 'zod';
import { ConfigError, formatZodIssues } from './errors';

const perMillion = z.number().nonnegative('must be a non-negative price per million tokens');

export const PriceSchema = z.object({
  input: perMillion,
  cacheWrite5m: perMillion,
  cacheWrite1h: perMillion,
  cacheRead: perMillion,
  output: perMillion,
});
export type Price = z.infer<typeof PriceSchema>;

export const ModelPricingSchema = z.object({
  base: PriceSchema,
  /** Some models charge a higher rate for the whole request once its prompt exceeds a size. */
  longPrompt: z.object({ aboveTokens: z.number().int().positive(), price: PriceSchema }).optional(),
});
export type ModelPricing = z.infer<typeof ModelPricingSchema>;

export const PriceTableSchema = z
  .object({
    models: z.record(
      z.string().regex(/^claude-[a-z0-9-]+$/, 'must be a model id like claude-opus-5-5'),
      ModelPricingSchema,
    ),
    aliases: z.record(z.string().min(1), z.string()),
  })
  .superRefine((t, ctx) => {
    for (const [alias, target] of Object.entries(t.aliases)) {
      if (!(target in t.models)) {
        ctx.addIssue({
          code: 'custom',
          path: ['aliases', alias],
          message: `names unknown model "${target}"`,
        });
      }
    }
  });
export type PriceTable = z.infer<typeof PriceTableSchema>;

const p = (
  input: number,
  cacheWrite5m: number,
  cacheWrite1h: number,
  cacheRead: number,
  output: number,
): Price => ({
  input,
  cacheWrite5m,
  cacheWrite1h,
  cacheRead,
  output,
});
const opus4 = { base: p(5, 6.25, 10, 0.5, 25) };
const sonnet4 = { base: p(3, 3.75, 6, 0.3, 15) };

function loadTable(raw: unknown): PriceTable {
  const parsed = PriceTableSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(formatZodIssues(parsed.error, 'pricing').join('; '));
  return parsed.data;
}

/** The price table; validated once at load so a typo fails loudly rather than mis-pricing silently. */
export const PRICE_TABLE: PriceTable = loadTable({
  models: {
    'claude-opus-5-5': { base: p(4, 5, 8, 0.2, 20) },
    'claude-sonnet-5-5': { base: p(2, 2.5, 4, 0.1, 10) },
    'claude-haiku-5-5': {
      base: p(0.1, 0.125, 0.2, 0.01, 0.5),
      longPrompt: { aboveTokens: 100_000, price: p(0.5, 0.625, 1, 0.05, 2.5) },
    },
    'claude-opus-5': opus4,
    'claude-opus-4-8': opus4,
    'claude-opus-4-7': opus4,
    'claude-opus-4-6': opus4,
    'claude-opus-4-5': opus4,
    'claude-sonnet-4-6': sonnet4,
    'claude-sonnet-4-5': sonnet4,
    'claude-sonnet-4': sonnet4,
    'claude-haiku-4-5': { base: p(1, 1.25, 2, 0.1, 5) },
  },
  aliases: { opus: 'claude-opus-5-5', sonnet: 'claude-sonnet-5-5', haiku: 'claude-haiku-5-5' },
});

/** Token usage in Messages API field names; nulls are treated as zero, as the API may send them. */
export interface UsageLike {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  /** Split of `cache_creation_input_tokens` by cache lifetime, when the API reports it. */
  cache_creation?: {
    ephemeral_5m_input_tokens?: number | null;
    ephemeral_1h_input_tokens?: number | null;
  } | null;
}

/**
 * The canonical model id for an id or alias (`opus` → `claude-opus-5-5`), or undefined when unknown.
 * A dated snapshot suffix (`claude-haiku-4-5-20251001`) resolves to its model.
 */
export function resolveModel(model: string, table: PriceTable = PRICE_TABLE): string | undefined {
  const id = table.aliases[model] ?? model;
  if (id in table.models) return id;
  const undated = id.replace(/-\d{8}$/, '');
  return undated in table.models ? undated : undefined;
}

/** True when {@link priceUsage} can price this model id or alias. */
export function isKnownModel(model: string, table: PriceTable = PRICE_TABLE): boolean {
  return resolveModel(model, table) !== undefined;
}

/**
 * USD cost of one response's usage on `model`. Throws {@link ConfigError} for a model the table does not know,
 * because guessing a price would corrupt budgets.
 */
export function priceUsage(model: string, usage: UsageLike, table: PriceTable = PRICE_TABLE): number {
  const id = resolveModel(model, table);
  const pricing = id === undefined ? undefined : table.models[id];
  if (!pricing) {
    throw new ConfigError(
      `model: no price known for "${model}" (known: ${Object.keys(table.models).join(', ')})`,
    );
  }
  const n = (v: number | null | undefined) => v ?? 0;
  const input = n(usage.input_tokens);
  const cacheRead = n(usage.cache_read_input_tokens);
  const cacheCreation = n(usage.cache_creation_input_tokens);
  const w1h = n(usage.cache_creation?.ephemeral_1h_input_tokens);
  // Cache writes without a lifetime split are 5-minute writes (the API default).
  const w5m = Math.max(n(usage.cache_creation?.ephemeral_5m_input_tokens), cacheCreation - w1h);
  const promptTokens = input + cacheRead + Math.max(cacheCreation, w5m + w1h);
  const price =
    pricing.longPrompt && promptTokens > pricing.longPrompt.aboveTokens
      ? pricing.longPrompt.price
      : pricing.base;
  const micro =
    input * price.input +
    w5m * price.cacheWrite5m +
    w1h * price.cacheWrite1h +
    cacheRead * price.cacheRead +
    n(usage.output_tokens) * price.output;
  // Rounded to 1e-12 USD so float noise (0.2 * 30 = 6.000000000000001) never shows in sums and comparisons.
  return Math.round(micro * 1e6) / 1e12;
}

// ---------------------------------------------------------------------------------------------------------
// Exact money: integer micro-dollars

/**
 * The one rounding rule for money: an exact amount in nano-dollars (integer) becomes integer micro-dollars,
 * half up. Every response is priced once, with this, by the metering gateway and by the local model
 * server's tally alike, so sums of responses agree to the micro-dollar with no drift.
 */
export function microFromNano(nano: number): number {
  return Math.floor((nano + 500) / 1000);
}

/** tokens × (USD per million) in nano-dollars, exact for prices with at most three decimals. */
function nanoOf(tokens: number, perMillion: number): number {
  return Math.round(tokens * perMillion * 1000);
}

function usageMicroUsd(pricing: ModelPricing, usage: UsageLike): number {
  const n = (v: number | null | undefined) => v ?? 0;
  const input = n(usage.input_tokens);
  const cacheRead = n(usage.cache_read_input_tokens);
  const cacheCreation = n(usage.cache_creation_input_tokens);
  const w1h = n(usage.cache_creation?.ephemeral_1h_input_tokens);
  const w5m = Math.max(n(usage.cache_creation?.ephemeral_5m_input_tokens), cacheCreation - w1h);
  const promptTokens = input + cacheRead + Math.max(cacheCreation, w5m + w1h);
  const price =
    pricing.longPrompt && promptTokens > pricing.longPrompt.aboveTokens
      ? pricing.longPrompt.price
      : pricing.base;
  return microFromNano(
    nanoOf(input, price.input) +
      nanoOf(w5m, price.cacheWrite5m) +
      nanoOf(w1h, price.cacheWrite1h) +
      nanoOf(cacheRead, price.cacheRead) +
      nanoOf(n(usage.output_tokens), price.output),
  );
}

/** Integer micro-dollars of one response's usage on a known `model`; throws {@link ConfigError} otherwise. */
export function priceMicroUsd(model: string, usage: UsageLike, table: PriceTable = PRICE_TABLE): number {
  const id = resolveModel(model, table);
  const pricing = id === undefined ? undefined : table.models[id];
  if (!pricing) {
    throw new ConfigError(
      `model: no price known for "${model}" (known: ${Object.keys(table.models).join(', ')})`,
    );
  }
  return usageMicroUsd(pricing, usage);
}

/** What a served response costs, and which price it was charged at. */
export interface ServedPrice {
  microUsd: number;
  /** The table model whose price was used: the served model itself when known. */
  pricedAs: string;
  /** True when the served model is not in the table: charged at its family's most expensive price. */
  unknownModel: boolean;
}

/** The family of a model id (`claude-opus-…` → `opus`), if it names one. */
export function modelFamily(model: string): string | undefined {
  return /\b(opus|sonnet|haiku)\b/.exec(model.replace(/-/g, ' '))?.[1];
}

/** A price's weight for "most expensive": output first, then input (the dominant terms of any turn). */
function dearness(m: ModelPricing): [number, number] {
  return [m.base.output, m.base.input];
}

/**
 * The most expensive table model of `model`'s family (of the whole table when the id names no family):
 * what an unknown served model is charged at, so it is never free.
 */
export function dearestOfFamily(model: string, table: PriceTable = PRICE_TABLE): string {
  const family = modelFamily(model);
  const ids = Object.keys(table.models);
  const candidates = ids.filter((id) => family !== undefined && modelFamily(id) === family);
  let best: string | undefined;
  for (const id of candidates.length > 0 ? candidates : ids) {
    const [o, i] = dearness(table.models[id]!);
    const cur = best === undefined ? undefined : dearness(table.models[best]!);
    if (!cur || o > cur[0] || (o === cur[0] && i > cur[1])) best = id;
  }
  return best!;
}

/**
 * Prices a response on the model that served it. Never throws and never returns 0 for an unknown model:
 * that is charged at the most expensive known price of its family and flagged.
 */
export function priceServed(model: string, usage: UsageLike, table: PriceTable = PRICE_TABLE): ServedPrice {
  const known = resolveModel(model, table);
  const pricedAs = known ?? dearestOfFamily(model, table);
  return {
    microUsd: usageMicroUsd(table.models[pricedAs]!, usage),
    pricedAs,
    unknownModel: known === undefined,
  };
}
