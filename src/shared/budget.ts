/**
 * The budget ledger: plain serializable data plus pure functions. The project workflow holds the ledger in
 * its state, so it is rebuilt by replay after a crash and is carried across continue-as-new as input.
 *
 * Money is kept in integer micro-dollars: summing thousands of float charges drifts, integers do not. The
 * public API speaks USD numbers and converts at the edge.
 *
 * Limits apply at three levels (run, phase, agent-in-phase), each in USD and/or tokens. A turn first
 * {@link reserve}s its estimate, then {@link charge}s its real cost under the same key, which replaces the
 * reservation. Charges are idempotent by key, so a retried activity never double-charges. Spend is never
 * subtracted: work undone by a rollback was still paid for.
 *
 * Deterministic sandbox code: imports only zod.
 */
import { z } from 'zod';
import type { BudgetLimit } from './spec';

const MICRO = 1_000_000;

const nonNegInt = z.number().int().nonnegative();

/** A limit as stored: USD in micro-dollars. */
const StoredLimitSchema = z.object({ microUsd: nonNegInt.optional(), tokens: nonNegInt.optional() });
type StoredLimit = z.infer<typeof StoredLimitSchema>;

/** Spend of one (phase, agent, model) cell. */
const SpendRowSchema = z.object({
  microUsd: nonNegInt,
  tokens: nonNegInt,
  inputTokens: nonNegInt,
  outputTokens: nonNegInt,
  cacheCreationTokens: nonNegInt,
  cacheReadTokens: nonNegInt,
  /** Number of charges (turn attempts that reported a cost). */
  turns: nonNegInt,
});
type SpendRow = z.infer<typeof SpendRowSchema>;

const ReservationSchema = z.object({
  phase: z.string(),
  agent: z.string(),
  microUsd: nonNegInt,
  tokens: nonNegInt,
});

/**
 * The ledger state. Validate with this schema when it crosses a boundary (continue-as-new input, a query
 * answer read by the CLI); the functions below assume a valid ledger.
 */
export const LedgerSchema = z.object({
  version: z.literal(1),
  limits: z.object({
    run: StoredLimitSchema,
    phases: z.record(z.string(), StoredLimitSchema),
    /** phase → agent → limit: agent ids are unique within a phase only. */
    agents: z.record(z.string(), z.record(z.string(), StoredLimitSchema)),
  }),
  /** phase → agent → model → spend. Everything else (run, phase, agent, model totals) is derived. */
  spend: z.record(z.string(), z.record(z.string(), z.record(z.string(), SpendRowSchema))),
  /** Open reservations by turn-attempt key. */
  reservations: z.record(z.string(), ReservationSchema),
  /** Keys already charged: the idempotency record. */
  charged: z.record(z.string(), z.literal(true)),
  /**
   * Served models missing from the price table → the table model they were charged at (the dearest of
   * their family). Flagged in reports: such a charge is an upper bound, not a published price.
   */
  unknownModels: z.record(z.string(), z.string()).optional(),
});
export type Ledger = z.infer<typeof LedgerSchema>;

export const BudgetLevelSchema = z.enum(['run', 'phase', 'agent']);
export type BudgetLevel = z.infer<typeof BudgetLevelSchema>;

/** Where a limit applies. `phase` is required for phase and agent levels, `agent` for the agent level. */
export const BudgetScopeSchema = z
  .object({
    level: BudgetLevelSchema,
    phase: z.string().min(1).optional(),
    agent: z.string().min(1).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.level !== 'run' && !s.phase) {
      ctx.addIssue({ code: 'custom', path: ['phase'], message: `is required for level "${s.level}"` });
    }
    if (s.level === 'agent' && !s.agent) {
      ctx.addIssue({ code: 'custom', path: ['agent'], message: 'is required for level "agent"' });
    }
  });
export type BudgetScope = z.infer<typeof BudgetScopeSchema>;

/** Limits given when the ledger is created. Agent limits are keyed by phase, then agent id. */
export interface LedgerLimits {
  run?: BudgetLimit;
  phases?: Record<string, BudgetLimit>;
  agents?: Record<string, Record<string, BudgetLimit>>;
}

/** Token usage of one turn, with the Messages API field names. Every token kind counts toward limits. */
export interface TokenUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

export interface ReserveRequest {
  /** Unique per turn attempt, e.g. `${agentId}#${turn}`; the later charge uses the same key. */
  key: string;
  phase: string;
  agent: string;
  estimateUsd: number;
  estimateTokens: number;
}

export interface ChargeRequest {
  /** The key of the turn attempt's reservation; a second charge with the same key does nothing. */
  key: string;
  phase: string;
  agent: string;
  model: string;
  usage: TokenUsage;
  /** The cost of this turn alone (not a session's cumulative cost). */
  costUsd: number;
  /** The exact cost in integer micro-dollars (from the meter); wins over `costUsd` when given. */
  microUsd?: number;
  /** Set when `model` is not in the price table: the table model it was charged at. */
  pricedAs?: string;
}

export type BudgetUnit = 'usd' | 'tokens';

/** Why a reservation was refused: the first limit (run, then phase, then agent) it would break. */
export interface BudgetExceeded {
  level: BudgetLevel;
  scope: BudgetScope;
  unit: BudgetUnit;
  limit: number;
  spent: number;
  /** Held by other open reservations. */
  reserved: number;
  requested: number;
}

export type ReserveResult = { ok: true; ledger: Ledger } | { ok: false; exceeded: BudgetExceeded };

/** Amounts in the public unit: USD as a number, tokens as integers. */
export interface SpendTotals {
  usd: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
  turns: number;
}

export interface BudgetReport {
  run: SpendTotals & { limit: BudgetLimit; reservedUsd: number; reservedTokens: number };
  phases: Array<SpendTotals & { phase: string; limit: BudgetLimit }>;
  agents: Array<SpendTotals & { phase: string; agent: string; limit: BudgetLimit }>;
  models: Array<
    SpendTotals & { model: string; /** Unknown model: the price it was charged at. */ pricedAs?: string }
  >;
}

// ---------------------------------------------------------------------------------------------------------
// Conversions and small helpers

/** USD → integer micro-dollars (rounded to the nearest micro-dollar). */
export function toMicroUsd(usd: number): number {
  assertAmount(usd, 'USD amount');
  return Math.round(usd * MICRO);
}

/** Integer micro-dollars → USD. */
export function fromMicroUsd(micro: number): number {
  return micro / MICRO;
}

/**
 * USD rounded to the micro-dollar, as the ledger counts it: for sums of float costs shown in results,
 * status and search attributes. Unchecked, unlike {@link toMicroUsd}: a workflow rounding a figure for
 * display must not fail its task over one.
 */
export function round6(usd: number): number {
  return Math.round(usd * MICRO) / MICRO;
}

function assertAmount(n: number, what: string): void {
  // A NaN or negative amount is a bug upstream; failing loudly beats a ledger that silently stops adding up.
  if (!Number.isFinite(n) || n < 0)
    throw new RangeError(`${what} must be a finite non-negative number (got ${n})`);
}

function assertTokens(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer (got ${n})`);
}

function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

function storeLimit(limit: BudgetLimit): StoredLimit {
  const out: StoredLimit = {};
  if (limit.usd !== undefined) out.microUsd = toMicroUsd(limit.usd);
  if (limit.tokens !== undefined) {
    assertTokens(limit.tokens, 'token limit');
    out.tokens = limit.tokens;
  }
  return out;
}

function publicLimit(limit: StoredLimit | undefined): BudgetLimit {
  const out: BudgetLimit = {};
  if (limit?.microUsd !== undefined) out.usd = fromMicroUsd(limit.microUsd);
  if (limit?.tokens !== undefined) out.tokens = limit.tokens;
  return out;
}

const ZERO_ROW: SpendRow = {
  microUsd: 0,
  tokens: 0,
  inputTokens: 0,
  outputTokens: 0,
  cacheCreationTokens: 0,
  cacheReadTokens: 0,
  turns: 0,
};

function addRows(a: SpendRow, b: SpendRow): SpendRow {
  return {
    microUsd: a.microUsd + b.microUsd,
    tokens: a.tokens + b.tokens,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheCreationTokens: a.cacheCreationTokens + b.cacheCreationTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    turns: a.turns + b.turns,
  };
}

function publicRow(r: SpendRow): SpendTotals {
  return {
    usd: fromMicroUsd(r.microUsd),
    tokens: r.tokens,
    inputTokens: r.inputTokens,
    outputTokens: r.outputTokens,
    cacheCreationTokens: r.cacheCreationTokens,
    cacheReadTokens: r.cacheReadTokens,
    turns: r.turns,
  };
}

interface Cell {
  phase: string;
  agent: string;
  model: string;
  row: SpendRow;
}

function cells(ledger: Ledger): Cell[] {
  const out: Cell[] = [];
  for (const [phase, agents] of Object.entries(ledger.spend)) {
    for (const [agent, models] of Object.entries(agents)) {
      for (const [model, row] of Object.entries(models)) out.push({ phase, agent, model, row });
    }
  }
  return out;
}

function sumCells(ledger: Ledger, match: (c: Cell) => boolean): SpendRow {
  return cells(ledger)
    .filter(match)
    .reduce((acc, c) => addRows(acc, c.row), ZERO_ROW);
}

function sumReservations(
  ledger: Ledger,
  match: (r: { phase: string; agent: string }) => boolean,
  exceptKey?: string,
): { microUsd: number; tokens: number } {
  let microUsd = 0;
  let tokens = 0;
  for (const [key, r] of Object.entries(ledger.reservations)) {
    if (key === exceptKey || !match(r)) continue;
    microUsd += r.microUsd;
    tokens += r.tokens;
  }
  return { microUsd, tokens };
}

interface LevelView {
  level: BudgetLevel;
  scope: BudgetScope;
  limit: StoredLimit | undefined;
  match: (c: { phase: string; agent: string }) => boolean;
}

/** The three levels that govern a turn of `agent` in `phase`, widest first. */
function levelsFor(ledger: Ledger, phase: string, agent: string): LevelView[] {
  const agentLimits = own(ledger.limits.agents, phase);
  return [
    { level: 'run', scope: { level: 'run' }, limit: ledger.limits.run, match: () => true },
    {
      level: 'phase',
      scope: { level: 'phase', phase },
      limit: own(ledger.limits.phases, phase),
      match: (c) => c.phase === phase,
    },
    {
      level: 'agent',
      scope: { level: 'agent', phase, agent },
      limit: agentLimits ? own(agentLimits, agent) : undefined,
      match: (c) => c.phase === phase && c.agent === agent,
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------
// Operations

/** Creates an empty ledger with the given limits. */
export function createLedger(limits: LedgerLimits = {}): Ledger {
  // fromEntries defines own properties, so even a key like "__proto__" stays plain data.
  const phases = Object.fromEntries(
    Object.entries(limits.phases ?? {}).map(([phase, l]) => [phase, storeLimit(l)]),
  );
  const agents = Object.fromEntries(
    Object.entries(limits.agents ?? {}).map(([phase, byAgent]) => [
      phase,
      Object.fromEntries(Object.entries(byAgent).map(([agent, l]) => [agent, storeLimit(l)])),
    ]),
  );
  return {
    version: 1,
    limits: { run: storeLimit(limits.run ?? {}), phases, agents },
    spend: {},
    reservations: {},
    charged: {},
  };
}

/**
 * Builds ledger limits from a resolved spec: run limits from `constraints`, phase limits from `phase.budget`,
 * agent limits from `agent.budget_usd` / `budget_tokens`. `agentId` must match the ids the workflow charges
 * under (default: `agent.id`, else the role).
 */
export function limitsFromSpec(
  spec: {
    constraints: { budget_usd?: number; budget_tokens?: number };
    phases: Array<{
      name: string;
      budget?: BudgetLimit;
      agents: Array<{ id?: string; role: string; budget_usd?: number; budget_tokens?: number }>;
    }>;
  },
  agentId: (agent: { id?: string; role: string }, index: number) => string = (a) => a.id ?? a.role,
): LedgerLimits {
  const limits: Required<LedgerLimits> = {
    run: { usd: spec.constraints.budget_usd, tokens: spec.constraints.budget_tokens },
    phases: {},
    agents: {},
  };
  for (const p of spec.phases) {
    if (p.budget) limits.phases[p.name] = p.budget;
    p.agents.forEach((a, i) => {
      if (a.budget_usd === undefined && a.budget_tokens === undefined) return;
      const byAgent = (limits.agents[p.name] ??= {});
      byAgent[agentId(a, i)] = { usd: a.budget_usd, tokens: a.budget_tokens };
    });
  }
  return limits;
}

/**
 * Sets the limit at `scope` (used by the `raiseBudget` update). Units present in `limit` replace the
 * current ones; units left out keep their current value.
 */
export function setLimit(ledger: Ledger, scope: BudgetScope, limit: BudgetLimit): Ledger {
  const s = BudgetScopeSchema.parse(scope);
  const patch = storeLimit(limit);
  const { limits } = ledger;
  if (s.level === 'run') {
    return { ...ledger, limits: { ...limits, run: { ...limits.run, ...patch } } };
  }
  const phase = s.phase as string; // guaranteed by BudgetScopeSchema for phase and agent levels
  if (s.level === 'phase') {
    const merged = { ...own(limits.phases, phase), ...patch };
    return { ...ledger, limits: { ...limits, phases: { ...limits.phases, [phase]: merged } } };
  }
  const agent = s.agent as string;
  const byAgent = own(limits.agents, phase) ?? {};
  const merged = { ...own(byAgent, agent), ...patch };
  return {
    ...ledger,
    limits: { ...limits, agents: { ...limits.agents, [phase]: { ...byAgent, [agent]: merged } } },
  };
}

/** The limit currently set at `scope` (empty when none). */
export function getLimit(ledger: Ledger, scope: BudgetScope): BudgetLimit {
  const s = BudgetScopeSchema.parse(scope);
  if (s.level === 'run') return publicLimit(ledger.limits.run);
  if (s.level === 'phase') return publicLimit(own(ledger.limits.phases, s.phase as string));
  const byAgent = own(ledger.limits.agents, s.phase as string);
  return publicLimit(byAgent ? own(byAgent, s.agent as string) : undefined);
}

/**
 * Reserves a turn's estimate against every level. Refused when, at some level and unit with a limit,
 * spent + reserved + requested would exceed the limit, or nothing remains at all (so a zero estimate
 * cannot slip past an exhausted budget). Reserving an existing key replaces its reservation; reserving a
 * key that was already charged is a no-op success.
 */
export function reserve(ledger: Ledger, req: ReserveRequest): ReserveResult {
  assertAmount(req.estimateUsd, 'estimateUsd');
  assertTokens(req.estimateTokens, 'estimateTokens');
  if (Object.hasOwn(ledger.charged, req.key)) return { ok: true, ledger };

  const requested = { microUsd: toMicroUsd(req.estimateUsd), tokens: req.estimateTokens };
  for (const lv of levelsFor(ledger, req.phase, req.agent)) {
    if (!lv.limit) continue;
    const spent = sumCells(ledger, lv.match);
    // A retried reservation replaces itself, so its own earlier hold must not count against it.
    const reserved = sumReservations(ledger, lv.match, req.key);
    const units: Array<[BudgetUnit, number | undefined, number, number, number]> = [
      ['usd', lv.limit.microUsd, spent.microUsd, reserved.microUsd, requested.microUsd],
      ['tokens', lv.limit.tokens, spent.tokens, reserved.tokens, requested.tokens],
    ];
    for (const [unit, limit, s, r, q] of units) {
      if (limit === undefined) continue;
      if (s + r + q > limit || s + r >= limit) {
        const conv = unit === 'usd' ? fromMicroUsd : (n: number) => n;
        return {
          ok: false,
          exceeded: {
            level: lv.level,
            scope: lv.scope,
            unit,
            limit: conv(limit),
            spent: conv(s),
            reserved: conv(r),
            requested: conv(q),
          },
        };
      }
    }
  }
  return {
    ok: true,
    ledger: {
      ...ledger,
      reservations: {
        ...ledger.reservations,
        [req.key]: { phase: req.phase, agent: req.agent, ...requested },
      },
    },
  };
}

/** Whether a charge with this key has been recorded. */
export function isCharged(ledger: Ledger, key: string): boolean {
  return Object.hasOwn(ledger.charged, key);
}

/**
 * Records a turn's real cost, replacing its reservation. Idempotent by key: charging a key that was
 * already charged returns the ledger unchanged (the same object). A charge may take a level over its
 * limit — the money is spent either way; later reservations will be refused.
 */
export function charge(ledger: Ledger, req: ChargeRequest): Ledger {
  if (Object.hasOwn(ledger.charged, req.key)) return ledger;
  assertAmount(req.costUsd, 'costUsd');
  const u = {
    inputTokens: req.usage.input_tokens ?? 0,
    outputTokens: req.usage.output_tokens ?? 0,
    cacheCreationTokens: req.usage.cache_creation_input_tokens ?? 0,
    cacheReadTokens: req.usage.cache_read_input_tokens ?? 0,
  };
  for (const [k, v] of Object.entries(u)) assertTokens(v, k);
  if (req.microUsd !== undefined) assertTokens(req.microUsd, 'microUsd');
  const row: SpendRow = {
    microUsd: req.microUsd ?? toMicroUsd(req.costUsd),
    tokens: u.inputTokens + u.outputTokens + u.cacheCreationTokens + u.cacheReadTokens,
    ...u,
    turns: 1,
  };

  const byAgent = own(ledger.spend, req.phase) ?? {};
  const byModel = own(byAgent, req.agent) ?? {};
  const prev = own(byModel, req.model) ?? ZERO_ROW;
  const reservations = { ...ledger.reservations };
  delete reservations[req.key];
  return {
    ...ledger,
    spend: {
      ...ledger.spend,
      [req.phase]: { ...byAgent, [req.agent]: { ...byModel, [req.model]: addRows(prev, row) } },
    },
    reservations,
    charged: { ...ledger.charged, [req.key]: true },
    ...(req.pricedAs || ledger.unknownModels
      ? {
          unknownModels: {
            ...ledger.unknownModels,
            ...(req.pricedAs ? { [req.model]: req.pricedAs } : {}),
          },
        }
      : {}),
  };
}

/** Drops a reservation (the turn never ran or failed before costing anything). Never touches spend. */
export function release(ledger: Ledger, key: string): Ledger {
  if (!Object.hasOwn(ledger.reservations, key)) return ledger;
  const reservations = { ...ledger.reservations };
  delete reservations[key];
  return { ...ledger, reservations };
}

/**
 * What remains for a turn of `agent` in `phase`: per unit, the smallest (limit − spent − reserved) over the
 * levels that set a limit, floored at 0; a unit is absent when no level limits it. Pass the turn's own
 * reservation key as `exceptKey` so its hold does not shrink its own allowance (e.g. `--max-budget-usd`).
 */
export function remaining(
  ledger: Ledger,
  phase: string,
  agent: string,
  exceptKey?: string,
): { usd?: number; tokens?: number } {
  let microUsd: number | undefined;
  let tokens: number | undefined;
  for (const lv of levelsFor(ledger, phase, agent)) {
    if (!lv.limit) continue;
    const spent = sumCells(ledger, lv.match);
    const reserved = sumReservations(ledger, lv.match, exceptKey);
    if (lv.limit.microUsd !== undefined) {
      const left = Math.max(0, lv.limit.microUsd - spent.microUsd - reserved.microUsd);
      microUsd = microUsd === undefined ? left : Math.min(microUsd, left);
    }
    if (lv.limit.tokens !== undefined) {
      const left = Math.max(0, lv.limit.tokens - spent.tokens - reserved.tokens);
      tokens = tokens === undefined ? left : Math.min(tokens, left);
    }
  }
  const out: { usd?: number; tokens?: number } = {};
  if (microUsd !== undefined) out.usd = fromMicroUsd(microUsd);
  if (tokens !== undefined) out.tokens = tokens;
  return out;
}

/**
 * The limits that govern `agent` in `phase`, in exact units (micro-dollars, tokens), as the metering
 * gateway enforces them per model request: it counts every response of the run itself, so spend is not
 * subtracted here. A level without a limit is left out.
 */
export function limitsFor(
  ledger: Ledger,
  phase: string,
  agent: string,
): { run?: StoredLimit; phase?: StoredLimit; agent?: StoredLimit } {
  const out: { run?: StoredLimit; phase?: StoredLimit; agent?: StoredLimit } = {};
  for (const lv of levelsFor(ledger, phase, agent)) {
    if (lv.limit && (lv.limit.microUsd !== undefined || lv.limit.tokens !== undefined)) {
      out[lv.level] = { ...lv.limit };
    }
  }
  return out;
}

/** Run-wide spend and open reservations. */
export function totals(ledger: Ledger): SpendTotals & { reservedUsd: number; reservedTokens: number } {
  const reserved = sumReservations(ledger, () => true);
  return {
    ...publicRow(sumCells(ledger, () => true)),
    reservedUsd: fromMicroUsd(reserved.microUsd),
    reservedTokens: reserved.tokens,
  };
}

/**
 * Spend broken down per run, phase, agent and model, with the limits in force. Phases and agents that have
 * a limit but no spend yet are listed too.
 */
export function report(ledger: Ledger): BudgetReport {
  const all = cells(ledger);
  const phaseNames = new Set([...Object.keys(ledger.limits.phases), ...all.map((c) => c.phase)]);
  const agentKeys = new Map<string, { phase: string; agent: string }>();
  for (const [phase, byAgent] of Object.entries(ledger.limits.agents)) {
    for (const agent of Object.keys(byAgent)) agentKeys.set(JSON.stringify([phase, agent]), { phase, agent });
  }
  for (const c of all) agentKeys.set(JSON.stringify([c.phase, c.agent]), { phase: c.phase, agent: c.agent });
  const models = [...new Set(all.map((c) => c.model))];

  return {
    run: { ...totals(ledger), limit: publicLimit(ledger.limits.run) },
    phases: [...phaseNames].map((phase) => ({
      phase,
      ...publicRow(sumCells(ledger, (c) => c.phase === phase)),
      limit: getLimit(ledger, { level: 'phase', phase }),
    })),
    agents: [...agentKeys.values()].map(({ phase, agent }) => ({
      phase,
      agent,
      ...publicRow(sumCells(ledger, (c) => c.phase === phase && c.agent === agent)),
      limit: getLimit(ledger, { level: 'agent', phase, agent }),
    })),
    models: models.map((model) => {
      const pricedAs = ledger.unknownModels ? own(ledger.unknownModels, model) : undefined;
      return {
        model,
        ...publicRow(sumCells(ledger, (c) => c.model === model)),
        ...(pricedAs ? { pricedAs } : {}),
      };
    }),
  };
}

/** One line for logs, the audit trail and the CLI, e.g. `phase "qa" USD budget exhausted: limit $2, …`. */
export function describeExceeded(e: BudgetExceeded): string {
  const where =
    e.level === 'run'
      ? 'run'
      : e.level === 'phase'
        ? `phase "${e.scope.phase}"`
        : `agent "${e.scope.agent}" in phase "${e.scope.phase}"`;
  const fmt = (n: number) => (e.unit === 'usd' ? `$${n.toFixed(6).replace(/\.?0+$/, '')}` : `${n} tokens`);
  return (
    `${where} ${e.unit === 'usd' ? 'USD' : 'token'} budget exhausted: limit ${fmt(e.limit)}, ` +
    `${fmt(e.spent)} spent, ${fmt(e.reserved)} reserved, ${fmt(e.requested)} requested`
  );
}
