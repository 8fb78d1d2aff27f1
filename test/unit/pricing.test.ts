import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { PRICE_TABLE, PriceTableSchema, isKnownModel, priceUsage, resolveModel } from '../../config/pricing';

describe('priceUsage', () => {
  it('matches the reference check: 100 in, 20 cache-5m, 30 cache-read, 7 out on claude-opus-5-5', () => {
    const usage = {
      input_tokens: 100,
      cache_creation_input_tokens: 20,
      cache_read_input_tokens: 30,
      output_tokens: 7,
    };
    expect(priceUsage('claude-opus-5-5', usage)).toBe(0.000646);
    expect(priceUsage('opus', usage)).toBe(0.000646);
  });

  it('prices 1h cache writes from the lifetime split', () => {
    const usage = {
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_input_tokens: 1_000_000,
      cache_creation: { ephemeral_5m_input_tokens: 250_000, ephemeral_1h_input_tokens: 750_000 },
    };
    // sonnet-5-5: 0.25M × 2.50 + 0.75M × 4.00
    expect(priceUsage('claude-sonnet-5-5', usage)).toBeCloseTo(0.625 + 3, 10);
  });

  it('treats nulls as zero, as the API may send them', () => {
    expect(
      priceUsage('claude-haiku-4-5', {
        input_tokens: 1_000_000,
        output_tokens: 1_000_000,
        cache_creation_input_tokens: null,
        cache_read_input_tokens: null,
        cache_creation: null,
      }),
    ).toBe(6);
  });

  it('switches haiku-5-5 to the long-prompt tier for the whole request above 100k prompt tokens', () => {
    const at = { input_tokens: 90_000, cache_read_input_tokens: 10_000, output_tokens: 1000 };
    const above = { ...at, input_tokens: 90_001 };
    // ≤ 100k: 90k × 0.10 + 10k × 0.01 + 1k × 0.50
    expect(priceUsage('claude-haiku-5-5', at)).toBeCloseTo((9000 + 100 + 500) / 1e6, 12);
    // > 100k: every token at the higher rates
    expect(priceUsage('haiku', above)).toBeCloseTo((90_001 * 0.5 + 10_000 * 0.05 + 1000 * 2.5) / 1e6, 12);
  });

  it('throws ConfigError naming an unknown model', () => {
    expect(() => priceUsage('gpt-4', { input_tokens: 1, output_tokens: 1 })).toThrow(ConfigError);
    expect(() => priceUsage('gpt-4', { input_tokens: 1, output_tokens: 1 })).toThrow(/model: .*"gpt-4"/);
  });
});

describe('model names', () => {
  it('knows ids, aliases and dated snapshots, and nothing else', () => {
    expect(isKnownModel('claude-opus-4-7')).toBe(true);
    expect(isKnownModel('sonnet')).toBe(true);
    expect(resolveModel('haiku')).toBe('claude-haiku-5-5');
    expect(resolveModel('claude-haiku-4-5-20251001')).toBe('claude-haiku-4-5');
    expect(isKnownModel('claude-2')).toBe(false);
    expect(isKnownModel('')).toBe(false);
  });

  it('validates the table shape: an alias to a missing model is refused with its path', () => {
    const bad = { ...PRICE_TABLE, aliases: { fast: 'claude-nope-1' } };
    const r = PriceTableSchema.safeParse(bad);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['aliases', 'fast']);
    expect(PriceTableSchema.safeParse(PRICE_TABLE).success).toBe(true);
  });
});
