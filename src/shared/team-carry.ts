/**
 * What `teamWorkflow` carries across continue-as-new (issue #13, long teams), and when it continues.
 * The carry holds references and summaries only: each agent's row (no instructions, no transcript), the
 * refusals shown in status (capped), the budget ledger and meter charges, the audit trail's head. The
 * agents' own workflows keep running across the boundary (they are started with parent close policy
 * ABANDON) and report their end with signal `agentEnded` to the team's latest run.
 * Deterministic sandbox code.
 */
import type { Ledger } from './budget';
import type { CapabilityState } from './identity';
import type { MeterCharged } from './meter-charge';
import type { TeamAgentRow, TeamRefusal, TeamState } from './team';

/** An agent as the next run gets it: its status row, its `team` chain, its capability reference. */
export interface CarriedAgent extends TeamAgentRow {
  cap?: CapabilityState;
  capability?: { file: string; anchor: string };
}

/** The budget side of a metered agent: what its meter has been charged, and whether a budget holds it. */
export interface CarriedMeter {
  charged: MeterCharged;
  running: boolean;
  paused: boolean;
}

export interface TeamCarry {
  startedAt: string;
  continuedAsNew: number;
  state: TeamState;
  stopReason?: string;
  stopSent: boolean;
  /** The agent whose failure stopped the team (policy `onAgentFailure: stop`). */
  failedBy?: string;
  counters: Record<string, number>;
  agents: CarriedAgent[];
  refusals: TeamRefusal[];
  ledger: Ledger;
  budgetVersion: number;
  meters: [string, CarriedMeter][];
  pauses: [string, string][];
  /** The audit trail's head (and entries not yet written): workflows/audit AuditCarry. */
  audit: { lastSeq: number; head?: string; pending?: unknown[] };
}

/** Where a team's execution continues as new, unless the server suggests it earlier. */
export interface ContinueAsNewLimits {
  /** History events. */
  events: number;
  /** History bytes. */
  bytes: number;
}

/**
 * Defaults: far below Temporal's limits (50k events, 50 MB) and its warnings (10k, 10 MB). A team drains
 * before it continues (every accepted request started, every handler done), and requests keep landing
 * meanwhile: under a flood from four requesters on a quiet machine the drain added 2,244 events and
 * 1.1 MB, so the drain starts at half the size it did, and no execution nears 2 MB (patch
 * `team-early-continue`).
 */
export const TEAM_CONTINUE_AS_NEW_AT: ContinueAsNewLimits = { events: 1_000, bytes: 500_000 };

/** What teams started before patch `team-early-continue` continue at (their histories replay with it). */
export const LEGACY_TEAM_CONTINUE_AS_NEW_AT: ContinueAsNewLimits = { events: 2_000, bytes: 1_000_000 };

/** Fewer events than this never continue: a big carry must not make every run continue at once. */
export const MIN_EVENTS_BEFORE_CONTINUING = 100;

/** Whether the team's execution should continue as new now. */
export function shouldContinueAsNew(
  history: { length: number; size: number; suggested: boolean },
  limits: ContinueAsNewLimits = TEAM_CONTINUE_AS_NEW_AT,
): boolean {
  if (history.length < MIN_EVENTS_BEFORE_CONTINUING) return false;
  return history.suggested || history.length >= limits.events || history.size >= limits.bytes;
}
