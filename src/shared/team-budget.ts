/**
 * Budgets of team runs, on the project runs' ledger (src/shared/budget): a team is a run whose "phases"
 * are its roles. So the three levels are the team (`team start --max-usd/--max-tokens`), a role (every
 * agent of it together, set with `budget set --role`), and an agent (its role's `budget_usd` /
 * `budget_tokens` from the hierarchy policy, or `budget set --agent`). Every agent is entered in the ledger
 * when the team accepts it, so `budget status|report` lists each one, spent or not.
 *
 * Pure decisions only; the team workflow applies them. Deterministic sandbox code.
 */
import { createLedger, setLimit, type BudgetScope, type Ledger } from './budget';
import type { BudgetLimit } from './spec';

/** A team's ledger: its own limit is the run level. */
export function teamLedger(budget: BudgetLimit | undefined): Ledger {
  return createLedger({ run: budget ?? {} });
}

/**
 * Enters an accepted agent in the ledger under its role, with its role's per-agent limit (or none: the
 * empty limit lists it in reports and limits nothing).
 */
export function addTeamAgent(
  ledger: Ledger,
  agent: { id: string; role: string },
  roleBudget: BudgetLimit | undefined,
): Ledger {
  const limit: BudgetLimit = {};
  if (roleBudget?.usd !== undefined) limit.usd = roleBudget.usd;
  if (roleBudget?.tokens !== undefined) limit.tokens = roleBudget.tokens;
  return setLimit(ledger, { level: 'agent', phase: agent.role, agent: agent.id }, limit);
}

/**
 * Why a `raiseBudget` scope does not fit this team (undefined when it does): the phase of a scope names a
 * role of the policy, and an agent must be an agent of the team with that role.
 */
export function checkTeamScope(
  scope: BudgetScope,
  team: { runId: string; roles: readonly string[]; agents: ReadonlyArray<{ id: string; role: string }> },
): string | undefined {
  if (scope.level === 'run') return undefined;
  const role = scope.phase ?? '';
  if (!team.roles.includes(role)) {
    return `team run ${team.runId} has no role "${role}"; roles: ${team.roles.join(', ')}`;
  }
  if (scope.level === 'phase') return undefined;
  const agent = team.agents.find((a) => a.id === scope.agent);
  if (!agent) {
    const ids = team.agents.map((a) => a.id);
    return `team run ${team.runId} has no agent "${scope.agent}"; agents: ${ids.join(', ') || 'none yet'}`;
  }
  if (agent.role !== role) return `agent ${agent.id} is a ${agent.role}, not a ${role}`;
  return undefined;
}

/** The command that raises the limit a team agent hit. */
export function teamRaiseCommand(runId: string, scope: BudgetScope, unit: 'usd' | 'tokens'): string {
  const amount = unit === 'tokens' ? '--max-tokens <n>' : '--max-usd <usd>';
  const at =
    scope.level === 'agent'
      ? ` --agent ${scope.agent}`
      : scope.level === 'phase'
        ? ` --role ${scope.phase}`
        : '';
  return `orchestrator budget set --run ${runId} ${amount}${at}`;
}

/**
 * A refusal's words for a team: the gateway speaks of phases, a team of roles
 * (`agent "intern-1" in phase "intern"` → `agent "intern-1" (role intern)`).
 */
export function teamReason(reason: string, role: string): string {
  return reason
    .split(` in phase "${role}"`)
    .join(` (role ${role})`)
    .split(`phase "${role}"`)
    .join(`role "${role}"`);
}
