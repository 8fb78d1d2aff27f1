/**
 * What a team shows of itself (queries `status` and `budget`, the result it returns): pure functions of
 * the team's state, so that they are tested without a server.
 */
import type { AuditEntry } from '../../src/shared/audit';
import { round6, totals as ledgerTotals, type Ledger } from '../../src/shared/budget';
import {
  isActive,
  type TeamPolicy,
  type TeamRefusal,
  type TeamState,
  type TeamStatus,
  type TeamWorkflowInput,
} from '../../src/shared/team';
import type { AgentRecord } from './types';

/** The newest audit entries the status query shows (the file and query `audit` have them all). */
export const AUDIT_IN_STATUS = 200;

/** Every agent's status row: what only the workflow holds is left out; a chain shows as its use count. */
export function statusRows(records: readonly AgentRecord[]): TeamStatus['agents'] {
  return records.map(({ instructions: _i, handle: _h, inherited: _n, cap, capability: _c, ...row }) => ({
    ...row,
    ...(cap ? { proofsUsed: cap.used } : {}),
  }));
}

/** Why agents wait: every budget pause (each names the command that raises it), or nothing. */
export function teamPausedReason(pauses: ReadonlyMap<string, string>): string | undefined {
  return pauses.size > 0 ? [...pauses.values()].join('; ') : undefined;
}

/** The team's state as `budget status` shows it: `paused` while a budget holds a running team's agent. */
export function budgetState(state: TeamState, pauses: number): TeamState | 'paused' {
  return state === 'running' && pauses > 0 ? 'paused' : state;
}

/** Whether the team has ended (its budget can no longer change). */
export function isOver(state: TeamState): boolean {
  return state === 'completed' || state === 'stopped' || state === 'failed';
}

/**
 * The team's cost so far. With a ledger the total is summed in micro-dollars: no drift from adding
 * rounded figures. Teams without one (recorded before team budgets) add their agents' reports.
 */
export function teamCost(records: readonly AgentRecord[], ledger: Ledger | undefined): number {
  return ledger ? ledgerTotals(ledger).usd : round6(records.reduce((s, r) => s + r.costUsd, 0));
}

/** What status says of the hierarchy policy. */
export function policySummary(policy: TeamPolicy): TeamStatus['policy'] {
  return {
    maxTeamSize: policy.maxTeamSize,
    maxRequestDepth: policy.maxRequestDepth,
    canRequest: Object.fromEntries(Object.entries(policy.roles).map(([k, v]) => [k, v.canRequest])),
  };
}

/** The parts of a team's state its status is built from. */
export interface TeamStatusParts {
  input: TeamWorkflowInput;
  state: TeamState;
  startedAt: string;
  completedAt: string | undefined;
  stopReason: string | undefined;
  pauses: ReadonlyMap<string, string>;
  records: readonly AgentRecord[];
  refusals: TeamRefusal[];
  /** The audit trail's entries in memory, oldest first. */
  audit: AuditEntry[];
  /** The ledger, when the team keeps one. */
  ledger: Ledger | undefined;
  /** The executions before this one (absent when this is the first). */
  continuedAsNew: number | undefined;
  /** The host the team's workspace lives on (patch `team-host-queue`). */
  host?: string | undefined;
}

/** The team's status (query `status`, and the team's result). */
export function teamStatus(p: TeamStatusParts): TeamStatus {
  return {
    runId: p.input.runId,
    goal: p.input.goal,
    state: p.state,
    backend: p.input.backend,
    workspace: p.input.workspace,
    outputsDir: p.input.outputsDir,
    startedAt: p.startedAt,
    completedAt: p.completedAt,
    stopReason: p.stopReason,
    ...(p.pauses.size > 0 ? { pausedReason: teamPausedReason(p.pauses) } : {}),
    agents: statusRows(p.records),
    refusals: p.refusals,
    audit: p.audit.slice(-AUDIT_IN_STATUS),
    totals: {
      costUsd: teamCost(p.records, p.ledger),
      agents: p.records.length,
      active: p.records.filter((r) => isActive(r.state)).length,
    },
    ...(p.continuedAsNew !== undefined ? { continuedAsNew: p.continuedAsNew } : {}),
    ...(p.host !== undefined ? { host: p.host } : {}),
    policy: policySummary(p.input.policy),
  };
}
