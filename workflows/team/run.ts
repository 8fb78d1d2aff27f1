/**
 * The state of one `teamWorkflow` execution in one place: the team's state, its agents' records, the
 * requests waiting to start, refusals, the budget ledger and meters, pauses, the audit trail. What
 * continue-as-new carries is built from it (./carry). The modules of workflows/team/ act on it; the
 * handlers read it.
 */
import { ApplicationFailure, getExternalWorkflowHandle, patched } from '@temporalio/workflow';
import { zodIssueText } from '../../src/shared/zod-issues';
import type { AuditKind } from '../../src/shared/audit';
import type { Ledger } from '../../src/shared/budget';
import {
  isActive,
  TeamWorkflowInputSchema,
  type TeamAgentOutcome,
  type TeamRefusal,
  type TeamState,
  type TeamStatus,
  type TeamView,
  type TeamWorkflowInput,
} from '../../src/shared/team';
import { teamLedger } from '../../src/shared/team-budget';
import {
  LEGACY_TEAM_CONTINUE_AS_NEW_AT,
  TEAM_CONTINUE_AS_NEW_AT,
  type TeamCarry,
} from '../../src/shared/team-carry';
import { type AuditCarry, type AuditTrail, createAuditTrail } from '../audit';
import { inheritedMeters, inheritedRecords, teamCarry } from './carry';
import {
  CAPABILITY_PATCH,
  DRAIN_QUEUE_PATCH,
  EARLY_CONTINUE_PATCH,
  HONEST_OUTCOMES_PATCH,
  LONG_TEAMS_PATCH,
  PROOF_REPLAYS_PATCH,
  TEAM_BUDGET_PATCH,
  TEAM_HOST_MOVE_PATCH,
  TEAM_HOST_PATCH,
  VERIFIED_ENDS_PATCH,
} from './patches';
import type { HostPlacement } from '../host-placement';
import type { TeamCheckpoint } from '../../src/shared/team-carry';
import { isOver, teamPausedReason, teamStatus } from './status';
import type { AgentRecord, MeterState } from './types';

/**
 * The team's input, validated: a team can be started by `temporal workflow start` or another service,
 * and a bad input fails it with the field named instead of a workflow task that retries forever.
 */
export function parseTeamInput(raw: unknown): TeamWorkflowInput {
  const parsed = TeamWorkflowInputSchema.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid team input: ${zodIssueText(parsed.error)}`,
      'InvalidTeamInput',
    );
  }
  return parsed.data;
}

export class TeamRun {
  readonly runId: string;
  readonly policy: TeamWorkflowInput['policy'];
  readonly startedAt: string;
  state: TeamState;
  completedAt: string | undefined = undefined;
  stopReason: string | undefined;
  stopSent: boolean;
  /** Every agent of the team, in the order they were requested. */
  readonly records: AgentRecord[];
  /** Accepted requests whose agent the main loop has not started yet. */
  readonly pending: AgentRecord[] = [];
  /**
   * Requests accepted while the team drains (patch `team-drain-queue`): the next execution starts them.
   * Their records are in {@link records}, state `starting`.
   */
  readonly queued: AgentRecord[] = [];
  /** The team is draining for continue-as-new and queues what it accepts. */
  draining = false;
  /** Agents requested so far, by role: the number in each agent's id. */
  readonly counters: Record<string, number>;
  readonly refusals: TeamRefusal[];
  readonly trail: AuditTrail;
  /** Requests must prove their requester (patch `agent-capabilities`). */
  readonly capabilities: boolean;
  /** The team keeps a ledger charged from its agents' meters (patch `team-budgets`). */
  readonly budgets: boolean;
  /** Failed agents and teams fail their workflows (patch `team-honest-outcomes`). */
  readonly honest: boolean;
  /** The team continues as new; its agents outlive each execution (patch `team-continue-as-new`). */
  readonly longTeams: boolean;
  /** `agentEnded` is checked against the server before it ends an agent (patch `team-verified-ends`). */
  readonly verifiedEnds: boolean;
  /** Agents whose `agentEnded` is being checked (./ends), with the latest end claimed for each. */
  readonly claimedEnds: Map<string, TeamAgentOutcome>;
  /** Digests of the messages delivered to each agent, the newest kept (query `messageVouched`). */
  readonly sentMessages: Map<string, string[]>;
  /**
   * A request resent with one of its sender's recently used proofs is answered as the original
   * (patch `team-proof-replays`).
   */
  readonly proofReplays: boolean;
  readonly continueAt: typeof TEAM_CONTINUE_AS_NEW_AT;
  /** Requests that land during a drain wait for the next execution (patch `team-drain-queue`). */
  readonly drainQueue: boolean;
  /** The team claims a host and its agents work there (patch `team-host-queue`, ./host). */
  readonly hosted: boolean;
  /** The team's host, once claimed (or carried): its agents' workspace steps go to its queues. */
  host: HostPlacement | undefined;
  /**
   * The team checkpoints its workspace and moves when its host is lost (patch `team-host-move`, ./host).
   * Asked once the team has a host, on its first execution or a continued one.
   */
  moves = false;
  /** The team's last checkpoint: what a move restores. */
  checkpoint: TeamCheckpoint | undefined;
  /** Why a checkpoint is wanted (the latest reason), while one is wanted and not yet taken. */
  checkpointWanted: string | undefined;
  /** A checkpoint is being taken (./host): the team continues or ends only after it. */
  checkpointing = false;
  /** The team is moving to another host (./host). */
  moving = false;
  /** The move failed (no checkpoint store, say): the team is stopped and then fails with it. */
  moveFailure: unknown;
  /** The agent whose failure stopped the team (policy `onAgentFailure: stop`). */
  failedBy: AgentRecord | undefined;
  /** The team's budget ledger (src/shared/budget): roles are its phases (src/shared/team-budget). */
  ledger: Ledger;
  /** Bumped by every `raiseBudget`: a pause that a raise overtook is not recorded. */
  budgetVersion: number;
  /** Metered agents by id. */
  readonly metered: Map<string, MeterState>;
  /** Agents a budget holds → why, with the command that raises it. */
  readonly pauses: Map<string, string>;
  /** Agents whose end is being processed, and meter reads in flight: the team continues only without. */
  finishing = 0;
  reading = 0;
  /** Agents whose end has been processed (from their result, their failure, or `agentEnded`). */
  readonly ended: Set<string>;

  constructor(
    readonly input: TeamWorkflowInput,
    readonly carry: TeamCarry | undefined,
  ) {
    this.runId = input.runId;
    this.policy = input.policy;
    this.startedAt = carry?.startedAt ?? new Date().toISOString();
    this.state = carry?.state ?? 'running';
    this.stopReason = carry?.stopReason;
    this.stopSent = carry?.stopSent ?? false;
    this.records = inheritedRecords(carry);
    // Requests the previous execution queued while it drained: this one starts them first, in order.
    for (const q of carry?.queued ?? []) {
      const rec = this.records.find((r) => r.id === q.id);
      if (rec) this.pending.push(rec);
    }
    this.counters = { ...carry?.counters };
    this.refusals = [...(carry?.refusals ?? [])];
    this.trail = createAuditTrail({
      runId: this.runId,
      outputsDir: input.outputsDir,
      persist: true,
      ...(carry ? { carry: carry.audit as AuditCarry } : {}),
    });
    // Asked in this order from the first execution on: markers are commands, their order is history.
    this.capabilities = patched(CAPABILITY_PATCH);
    this.budgets = patched(TEAM_BUDGET_PATCH);
    this.honest = patched(HONEST_OUTCOMES_PATCH);
    this.longTeams = patched(LONG_TEAMS_PATCH);
    this.proofReplays = patched(PROOF_REPLAYS_PATCH);
    const early = patched(EARLY_CONTINUE_PATCH);
    this.drainQueue = patched(DRAIN_QUEUE_PATCH);
    this.hosted = patched(TEAM_HOST_PATCH);
    this.moves = this.hosted && patched(TEAM_HOST_MOVE_PATCH);
    this.verifiedEnds = patched(VERIFIED_ENDS_PATCH);
    this.claimedEnds = new Map((carry?.claimedEnds ?? []).map((c) => [c.agentId, c]));
    this.sentMessages = new Map(carry?.sentMessages ?? []);
    this.host = carry?.host;
    this.checkpoint = carry?.checkpoint;
    this.continueAt = {
      ...(early ? TEAM_CONTINUE_AS_NEW_AT : LEGACY_TEAM_CONTINUE_AS_NEW_AT),
      ...input.continueAsNewAt,
    };
    this.failedBy = carry?.failedBy ? this.records.find((r) => r.id === carry.failedBy) : undefined;
    this.ledger = carry?.ledger ?? teamLedger(input.budget);
    this.budgetVersion = carry?.budgetVersion ?? 0;
    this.metered = inheritedMeters(carry);
    this.pauses = new Map<string, string>(carry?.pauses ?? []);
    this.ended = new Set<string>(this.records.filter((r) => !isActive(r.state)).map((r) => r.id));
  }

  /** Stops queueing: what was queued is started by this execution after all (it is not continuing). */
  stopDraining(): void {
    this.draining = false;
    this.pending.push(...this.queued.splice(0));
  }

  /** Records an audit entry; written to audit.jsonl by the background writer. */
  record(kind: AuditKind, actor: string, details: Record<string, unknown>): void {
    void this.trail.record(kind, details, actor);
  }

  byId(id: string): AgentRecord | undefined {
    return this.records.find((r) => r.id === id);
  }

  /** What the request checks of src/shared/team see of the team. */
  view(): TeamView {
    return { state: this.state, agents: this.records };
  }

  isOver(): boolean {
    return isOver(this.state);
  }

  pausedReason(): string | undefined {
    return teamPausedReason(this.pauses);
  }

  /** How to reach an agent's workflow: its child handle, or by id when an earlier execution started it. */
  agentHandle(rec: AgentRecord) {
    return rec.handle ?? (rec.inherited ? getExternalWorkflowHandle(rec.workflowId) : undefined);
  }

  status(): TeamStatus {
    return teamStatus({
      input: this.input,
      state: this.state,
      startedAt: this.startedAt,
      completedAt: this.completedAt,
      stopReason: this.stopReason,
      pauses: this.pauses,
      records: this.records,
      refusals: this.refusals,
      audit: this.trail.recent(),
      ledger: this.budgets ? this.ledger : undefined,
      continuedAsNew: this.carry?.continuedAsNew,
      host: this.host?.hostId,
    });
  }

  /** What the next execution starts from. */
  carryState(): TeamCarry {
    return teamCarry({
      startedAt: this.startedAt,
      continuedAsNew: this.carry?.continuedAsNew,
      state: this.state,
      stopReason: this.stopReason,
      stopSent: this.stopSent,
      failedBy: this.failedBy,
      counters: this.counters,
      records: this.records,
      refusals: this.refusals,
      ledger: this.ledger,
      budgetVersion: this.budgetVersion,
      metered: this.metered,
      pauses: this.pauses,
      audit: this.trail.carry(),
      queued: this.queued,
      host: this.host,
      checkpoint: this.checkpoint,
      claimedEnds: this.claimedEnds,
      sentMessages: this.sentMessages,
    });
  }
}
