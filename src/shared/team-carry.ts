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
import { utf8Bytes } from './sha256';
import type { TeamAgentOutcome, TeamAgentRow, TeamRefusal, TeamState } from './team';

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
  /**
   * Requests accepted while the team drained (patch `team-drain-queue`), in the order they came: their
   * rows are in `agents` (state `starting`); the next execution starts them, so it needs what they were
   * asked to do. Bounded by {@link QUEUED_INSTRUCTIONS_MAX_BYTES}.
   */
  queued?: QueuedRequest[];
  /** The team's host (patch `team-host-queue`): its workspace steps go to `queue`. */
  host?: { hostId: string; queue: string; moveAfterMs: number; store?: boolean };
  /**
   * The team's last checkpoint (patch `team-host-move`): the snapshot of its workspace a move restores,
   * `CP<n>` in the checkpoint store; `n` numbers the next.
   */
  checkpoint?: TeamCheckpoint;
  /**
   * `agentEnded` claims still being checked against the server (patch `team-verified-ends`,
   * workflows/team/ends): the next execution checks them again. The latest claim per agent.
   */
  claimedEnds?: TeamAgentOutcome[];
  /** Digests of the newest messages delivered to each agent (src/shared/team `messageDigest`). */
  sentMessages?: [string, string[]][];
}

/** A team's checkpoint: a snapshot of its workspace, pushed to the checkpoint store as `id`. */
export interface TeamCheckpoint {
  n: number;
  id: string;
  commit: string;
}

/** A request accepted while the team drained, started by the next execution. */
export interface QueuedRequest {
  id: string;
  instructions: string;
}

/**
 * How many bytes of instructions the requests queued during one drain may hold (they ride in the carry,
 * whose payload must stay far below Temporal's 2 MB limit). A request past it is refused as busy and
 * asked again by the client a moment later, in the next execution.
 */
export const QUEUED_INSTRUCTIONS_MAX_BYTES = 256_000;

/**
 * Whether a request with `instructions` fits in the queue of a draining team that already holds
 * `queued`. The first request always fits: a single request is at most 100,000 characters.
 */
export function fitsInDrainQueue(
  queued: readonly Pick<QueuedRequest, 'instructions'>[],
  instructions: string,
  max: number = QUEUED_INSTRUCTIONS_MAX_BYTES,
): boolean {
  if (queued.length === 0) return true;
  const held = queued.reduce((n, q) => n + utf8Bytes(q.instructions).length, 0);
  return held + utf8Bytes(instructions).length <= max;
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
 * before it continues (every request accepted before the drain started, every handler done). Requests
 * that land meanwhile: before patch `team-drain-queue` they were started too, so under a flood from four
 * requesters the drain added 2,244 events and 1.1 MB, and these limits were halved (patch
 * `team-early-continue`); since it, they are queued for the next execution, and a drain lasts as long as
 * its own starts, not as long as the flood.
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
