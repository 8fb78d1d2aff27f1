/**
 * What the Web UI and `temporal workflow list --query` see of a run: its search attributes and its
 * current details (Markdown), both derived from the status the workflow already answers queries with.
 * Pure, so the decisions (which values, which changed, what the text says) are unit tested without a
 * server; workflows/visibility.ts applies them.
 */
import { round6 } from './budget';
import { SearchAttributes } from './names';
import type { RunStatus } from './run';
import type { TeamAgentStatus, TeamStatus } from './team';

/** Our attributes by their key in {@link SearchAttributes}. */
export type AttributeKey = keyof typeof SearchAttributes;
export type AttributeValues = Partial<Record<AttributeKey, string | number>>;

/** The SDK's spelling of each type (`SearchAttributeType` of @temporalio/common). */
const SDK_TYPE = { Keyword: 'KEYWORD', Int: 'INT', Double: 'DOUBLE' } as const;
export type SdkAttributeType = (typeof SDK_TYPE)[keyof typeof SDK_TYPE];

/** One attribute to upsert, typed the way `upsertSearchAttributes` takes it. */
export interface AttributeUpdate {
  key: { name: string; type: SdkAttributeType };
  value: string | number;
}

/**
 * A status's `step`: `"step 3/6"` while phase 3 of 6 runs or is next, `"step 6/6"` once all ran. The
 * workflow's status and a closed run's status read from its record say it the same way.
 */
export function stepText(nextPhase: number, phaseCount: number): string {
  return `step ${Math.min(nextPhase + 1, phaseCount)}/${phaseCount}`;
}

/** The 1-based step and the step count of a status's `"step 3/6"` (zeros when it has none). */
export function stepOf(step: string): { n: number; of: number } {
  const m = /(\d+)\/(\d+)/.exec(step);
  return m ? { n: Number(m[1]), of: Number(m[2]) } : { n: 0, of: 0 };
}

/** The last checkpoint still in force (a rollback discards the later ones). */
function lastCheckpoint(s: RunStatus): RunStatus['checkpoints'][number] | undefined {
  return s.checkpoints.filter((c) => !c.rolledBack).at(-1);
}

/** A project run's attribute values. */
export function runAttributes(s: RunStatus, client?: string): AttributeValues {
  return {
    project: s.project,
    client,
    phase: s.currentPhase,
    state: s.state,
    step: stepOf(s.step).n,
    costUsd: round6(s.totals.costUsd),
    checkpoint: lastCheckpoint(s)?.id,
  };
}

/** A team run's attribute values (its "phase" is the team's own state: teams have no phases). */
export function teamAttributes(s: TeamStatus): AttributeValues {
  return { state: s.state, costUsd: round6(s.totals.costUsd) };
}

/** A project agent's attribute values: its role, its run and phase, so a run's agents list together. */
export function agentAttributes(
  where: { runId: string; phase: string; role: string },
  state: string,
  costUsd: number,
): AttributeValues {
  return { role: where.role, run: where.runId, phase: where.phase, state, costUsd: round6(costUsd) };
}

/** A project agent's current details. */
export function agentDetails(s: {
  step: string;
  turns: number;
  costUsd: number;
  lastTool?: string;
  attempt?: number;
}): string {
  const lines = [`**${s.step}** · ${s.turns} turn${s.turns === 1 ? '' : 's'} · ${money(s.costUsd)}`];
  if (s.lastTool) lines.push(`Last tool: ${s.lastTool}`);
  if (s.attempt !== undefined && s.attempt > 1) lines.push(`Attempt ${s.attempt}`);
  return lines.join('\n\n');
}

/** A team agent's attribute values: its role and its team's run, so a run's agents list together. */
export function teamAgentAttributes(s: TeamAgentStatus, teamRunId: string): AttributeValues {
  return { role: s.role, run: teamRunId, state: s.state, costUsd: round6(s.costUsd) };
}

/**
 * The updates that bring the attributes from `before` to `next`: only values that changed, only
 * attributes the namespace has registered (`indexed`; an unregistered one would fail the workflow task),
 * and never a removal (an unset value keeps the last one, e.g. the phase a run ended in).
 */
export function attributeChanges(
  next: AttributeValues,
  before: AttributeValues,
  indexed: ReadonlySet<string>,
): AttributeUpdate[] {
  const out: AttributeUpdate[] = [];
  for (const [k, def] of Object.entries(SearchAttributes) as [
    AttributeKey,
    (typeof SearchAttributes)[AttributeKey],
  ][]) {
    const value = next[k];
    if (value === undefined || value === before[k] || !indexed.has(def.name)) continue;
    out.push({ key: { name: def.name, type: SDK_TYPE[def.type] }, value });
  }
  return out;
}

function money(usd: number): string {
  return `$${usd.toFixed(usd < 1 ? 4 : 2)}`;
}

/** A project run's current details: what an operator looks for first on the run's page. */
export function runDetails(s: RunStatus, budgetUsd?: number): string {
  const { n, of } = stepOf(s.step);
  const lines = [`**Step ${n} of ${of}${s.currentPhase ? ` · ${s.currentPhase}` : ''}** · ${s.state}`];
  const running = s.agents.filter((a) => a.state === 'running');
  if (running.length > 0) lines.push(`Agents: ${running.map((a) => `${a.id} (${a.role})`).join(', ')}`);
  lines.push(
    `Cost: ${money(s.totals.costUsd)}${budgetUsd !== undefined ? ` of ${money(budgetUsd)} budget` : ''} · ${s.totals.tokens} tokens`,
  );
  const cp = lastCheckpoint(s);
  if (cp) lines.push(`Last checkpoint: ${cp.id} (${cp.label})`);
  if (s.pausedReason) lines.push(`Paused: ${s.pausedReason}`);
  return lines.join('\n\n');
}

/** A team run's current details. */
export function teamDetails(s: TeamStatus): string {
  const lines = [`**Team** · ${s.state} · ${s.totals.active} of ${s.totals.agents} agents active`];
  const active = s.agents.filter((a) => a.state === 'running' || a.state === 'starting');
  if (active.length > 0) lines.push(`Agents: ${active.map((a) => `${a.id} (${a.role})`).join(', ')}`);
  lines.push(`Cost: ${money(s.totals.costUsd)}`);
  if (s.pausedReason) lines.push(`Paused: ${s.pausedReason}`);
  if (s.stopReason) lines.push(`Stopped: ${s.stopReason}`);
  return lines.join('\n\n');
}
