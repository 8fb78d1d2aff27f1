/**
 * Whether one more model request may start: pure. A request is admitted only while the run, the agent's
 * phase and the agent itself all have room, in USD and in tokens: spent (every response recorded so far,
 * by every agent of the run) must be below each limit. Parallel agents share a level first come, first
 * served, so together they can pass a limit by at most the responses already in flight, one per agent.
 */

/** A limit in exact units: integer micro-dollars and tokens; a unit left out is unlimited. */
export interface AmountLimit {
  microUsd?: number;
  tokens?: number;
}

export interface MeterLimits {
  run?: AmountLimit;
  phase?: AmountLimit;
  agent?: AmountLimit;
}

export interface Spent {
  microUsd: number;
  tokens: number;
}

export type MeterLevel = 'run' | 'phase' | 'agent';

/** Why a request was refused: the first exhausted limit, widest level first. */
export interface Refusal {
  level: MeterLevel;
  unit: 'usd' | 'tokens';
  /** In the unit: USD as a number, or tokens. */
  limit: number;
  spent: number;
  phase: string;
  agent: string;
  message: string;
}

const usd = (micro: number) => `$${(micro / 1e6).toFixed(6).replace(/\.?0+$/, '')}`;

/** The one-line reason for a refusal, the same words the run's pause uses. */
export function refusalMessage(r: Omit<Refusal, 'message'>): string {
  const where =
    r.level === 'run'
      ? 'run'
      : r.level === 'phase'
        ? `phase "${r.phase}"`
        : `agent "${r.agent}" in phase "${r.phase}"`;
  const fmt = (n: number) => (r.unit === 'usd' ? usd(Math.round(n * 1e6)) : `${n} tokens`);
  return `${where} ${r.unit === 'usd' ? 'USD' : 'token'} budget exhausted: limit ${fmt(r.limit)}, ${fmt(r.spent)} spent`;
}

/** Undefined when the request may go; otherwise the limit that stops it. */
export function admit(
  limits: MeterLimits,
  spent: Record<MeterLevel, Spent>,
  who: { phase: string; agent: string },
): Refusal | undefined {
  for (const level of ['run', 'phase', 'agent'] as const) {
    const l = limits[level];
    if (!l) continue;
    const s = spent[level];
    if (l.microUsd !== undefined && s.microUsd >= l.microUsd) {
      const base = { level, unit: 'usd' as const, limit: l.microUsd / 1e6, spent: s.microUsd / 1e6, ...who };
      return { ...base, message: refusalMessage(base) };
    }
    if (l.tokens !== undefined && s.tokens >= l.tokens) {
      const base = { level, unit: 'tokens' as const, limit: l.tokens, spent: s.tokens, ...who };
      return { ...base, message: refusalMessage(base) };
    }
  }
  return undefined;
}
