/**
 * What one execution of `teamWorkflow` hands the next across continue-as-new (src/shared/team-carry
 * TeamCarry), and what the next one rebuilds from it. Pure: rows and references, never transcripts or
 * instructions.
 */
import type { AuditCarry } from '../audit';
import type { Ledger } from '../../src/shared/budget';
import { isActive, type TeamAgentOutcome, type TeamRefusal, type TeamState } from '../../src/shared/team';
import type { CarriedAgent, TeamCarry } from '../../src/shared/team-carry';
import type { AgentRecord, MeterState } from './types';

/**
 * The agents of a continued team. Those still active were started by an earlier execution: they are
 * signalled by id and their end is learnt from `agentEnded`.
 */
export function inheritedRecords(carry: TeamCarry | undefined): AgentRecord[] {
  // Queued requests (patch `team-drain-queue`) were never started: this execution starts them.
  const queued = new Map((carry?.queued ?? []).map((q) => [q.id, q.instructions]));
  return (carry?.agents ?? []).map((a) => {
    const instructions = queued.get(a.id);
    if (instructions !== undefined) return { ...a, instructions };
    return { ...a, instructions: '', ...(isActive(a.state) ? { inherited: true } : {}) };
  });
}

/** The metered agents of a continued team: their charges, with no meter read in flight. */
export function inheritedMeters(carry: TeamCarry | undefined): Map<string, MeterState> {
  return new Map<string, MeterState>(
    (carry?.meters ?? []).map(([id, m]) => [id, { ...m, chain: Promise.resolve() }]),
  );
}

/** The parts of a team's state the carry is made of. */
export interface CarryParts {
  startedAt: string;
  /** The executions before this one (absent when this is the first). */
  continuedAsNew: number | undefined;
  state: TeamState;
  stopReason: string | undefined;
  stopSent: boolean;
  failedBy: AgentRecord | undefined;
  counters: Record<string, number>;
  records: readonly AgentRecord[];
  refusals: TeamRefusal[];
  ledger: Ledger;
  budgetVersion: number;
  metered: ReadonlyMap<string, MeterState>;
  pauses: ReadonlyMap<string, string>;
  audit: AuditCarry;
  /** Requests accepted during the drain, not started (patch `team-drain-queue`). */
  queued?: readonly AgentRecord[];
  /** The team's host (patch `team-host-queue`). */
  host?: TeamCarry['host'];
  /** The team's last checkpoint (patch `team-host-move`). */
  checkpoint?: TeamCarry['checkpoint'];
  /** `agentEnded` claims still being checked (./ends). */
  claimedEnds?: ReadonlyMap<string, TeamAgentOutcome>;
  /** Digests of the messages delivered to each agent (./messages). */
  sentMessages?: ReadonlyMap<string, readonly string[]>;
}

/** What the next execution starts from. */
export function teamCarry(p: CarryParts): TeamCarry {
  const agents = p.records.map(
    ({ instructions: _i, handle: _h, inherited: _n, ...row }): CarriedAgent => row,
  );
  return {
    startedAt: p.startedAt,
    continuedAsNew: (p.continuedAsNew ?? 0) + 1,
    state: p.state,
    ...(p.stopReason !== undefined ? { stopReason: p.stopReason } : {}),
    stopSent: p.stopSent,
    ...(p.failedBy ? { failedBy: p.failedBy.id } : {}),
    counters: p.counters,
    agents,
    refusals: p.refusals,
    ledger: p.ledger,
    budgetVersion: p.budgetVersion,
    meters: [...p.metered].map(([id, m]) => [
      id,
      { charged: m.charged, running: m.running, paused: m.paused },
    ]),
    pauses: [...p.pauses],
    audit: p.audit,
    ...(p.queued?.length
      ? { queued: p.queued.map((r) => ({ id: r.id, instructions: r.instructions })) }
      : {}),
    ...(p.host ? { host: p.host } : {}),
    ...(p.checkpoint ? { checkpoint: p.checkpoint } : {}),
    // Claims of agents still active (one whose child result came is over).
    ...(p.claimedEnds?.size
      ? {
          claimedEnds: [...p.claimedEnds.values()].filter((c) =>
            p.records.some((r) => r.id === c.agentId && isActive(r.state)),
          ),
        }
      : {}),
    // Only agents still running can be asked about a message.
    ...(p.sentMessages?.size
      ? {
          sentMessages: [...p.sentMessages]
            .filter(([id]) => p.records.some((r) => r.id === id && isActive(r.state)))
            .map(([id, d]): [string, string[]] => [id, [...d]]),
        }
      : {}),
  };
}
