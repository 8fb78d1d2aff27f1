/**
 * What an agent child spent, read from whatever it reported: pure functions that turn a child's result or
 * failure into amounts the ledger can take, split per served model.
 */
import { type AgentResult, totalTokens, type Usage, ZERO_USAGE } from '../../src/shared/run';

/** The usage and cost an agent child reported, whichever way it ended. */
export interface Spend {
  usage: Usage;
  costUsd: number;
  models?: AgentResult['models'];
}

/** One ledger charge: the spend on one model. */
export interface ChargePart {
  model: string;
  usage: Usage;
  costUsd: number;
}

/** The result recorded for an agent child that failed or could not start (with what it spent, if known). */
export function failedAgent(
  agentId: string,
  role: string,
  backend: string,
  error: string,
  spend?: Spend,
): AgentResult {
  const now = new Date().toISOString();
  return {
    agentId,
    role,
    backend,
    status: 'failed',
    summary: '',
    usage: spend?.usage ?? { ...ZERO_USAGE },
    costUsd: spend?.costUsd ?? 0,
    ...(spend?.models ? { models: spend.models } : {}),
    error,
    startedAt: now,
    completedAt: now,
  };
}

/**
 * Spend a child reported in its failure (an agent that was cancelled or failed may put
 * `{ usage, costUsd, models? }` in its failure's details), looked for up to three causes deep.
 */
export function reportedSpend(err: unknown): Spend | undefined {
  let cause: unknown = err;
  for (let depth = 0; depth < 3 && cause; depth++) {
    const details = (cause as { details?: unknown }).details;
    const first: unknown = Array.isArray(details) ? details[0] : undefined;
    if (first && typeof first === 'object') {
      const d = first as Partial<Spend>;
      if (typeof d.costUsd === 'number' && d.usage && typeof d.usage === 'object') {
        return { usage: cleanUsage(d.usage), costUsd: cleanUsd(d.costUsd), models: d.models };
      }
    }
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Spend split per model; whatever the per-model figures do not cover is charged to `fallbackModel`. */
export function chargeParts(spend: Spend, fallbackModel: string): ChargePart[] {
  const parts: ChargePart[] = [];
  let costLeft = cleanUsd(spend.costUsd);
  let usageLeft = cleanUsage(spend.usage);
  for (const [model, m] of Object.entries(spend.models ?? {})) {
    const usage = cleanUsage(m.usage);
    const costUsd = cleanUsd(m.costUsd);
    if (costUsd === 0 && totalTokens(usage) === 0) continue;
    parts.push({ model, usage, costUsd });
    costLeft = Math.max(0, costLeft - costUsd);
    usageLeft = {
      input_tokens: Math.max(0, usageLeft.input_tokens - usage.input_tokens),
      output_tokens: Math.max(0, usageLeft.output_tokens - usage.output_tokens),
      cache_creation_input_tokens: Math.max(
        0,
        usageLeft.cache_creation_input_tokens - usage.cache_creation_input_tokens,
      ),
      cache_read_input_tokens: Math.max(0, usageLeft.cache_read_input_tokens - usage.cache_read_input_tokens),
    };
  }
  // Half a micro-dollar: below what the ledger can record (float noise of the subtraction).
  if (costLeft >= 5e-7 || totalTokens(usageLeft) > 0) {
    parts.push({ model: fallbackModel, usage: usageLeft, costUsd: costLeft });
  }
  return parts;
}

/** A reported amount the ledger can take: finite and non-negative (a bad figure must not wedge the run). */
export function cleanUsd(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

/** Reported token counts the ledger can take: whole, finite and non-negative. */
export function cleanUsage(u: Partial<Usage> | undefined): Usage {
  const t = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.round(n) : 0);
  return {
    input_tokens: t(u?.input_tokens),
    output_tokens: t(u?.output_tokens),
    cache_creation_input_tokens: t(u?.cache_creation_input_tokens),
    cache_read_input_tokens: t(u?.cache_read_input_tokens),
  };
}
