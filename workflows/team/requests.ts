/**
 * Teammate requests: a request checked against the hierarchy policy (src/shared/team
 * `checkSpawnRequest`) is accepted (a record, a ledger entry, an audit entry, a place in the queue the
 * main loop starts agents from) or refused (on record where status and the audit show it).
 */
import { log, uuid4 } from '@temporalio/workflow';
import {
  agentDir,
  checkSpawnRequest,
  teamAgentWorkflowId,
  type SpawnRequest,
  type SpawnResult,
  type TeamRefusal,
  type TeamWorkflowInput,
} from '../../src/shared/team';
import { addTeamAgent } from '../../src/shared/team-budget';
import { fitsInDrainQueue } from '../../src/shared/team-carry';
import type { TeamRun } from './run';
import type { AgentRecord } from './types';

/** Refusals status keeps (the newest): a flood of bad requests must not grow it without bound. */
export const REFUSALS_KEPT = 50;

/** Drops the oldest refusals beyond {@link REFUSALS_KEPT}; the audit keeps every one. */
export function keepRecentRefusals(refusals: TeamRefusal[]): void {
  if (refusals.length > REFUSALS_KEPT) refusals.splice(0, refusals.length - REFUSALS_KEPT);
}

/** The request of a refusal as status shows it: whatever the sender put there, short strings. */
export function refusedRequest(req: unknown): TeamRefusal['request'] {
  const r = (req ?? {}) as Partial<Record<'role' | 'name' | 'requestedBy', unknown>>;
  const str = (v: unknown) =>
    typeof v === 'string' ? v.slice(0, 100) : JSON.stringify(v ?? '?').slice(0, 100);
  return { role: str(r.role), name: str(r.name), requestedBy: str(r.requestedBy) };
}

/** What a `requestAgent` update answers. */
export function spawnResult(rec: AgentRecord, duplicate: boolean): SpawnResult {
  return {
    agentId: rec.id,
    name: rec.name,
    role: rec.role,
    workflowId: rec.workflowId,
    dir: rec.dir,
    depth: rec.depth,
    state: rec.state,
    duplicate,
  };
}

/** The agents every team starts with, as `[role, name]`: a manager, an architect, engineers, interns. */
export function initialRoster(
  input: Pick<TeamWorkflowInput, 'engineers' | 'interns'>,
  roles: { manager: string; architect: string; engineer: string; intern: string },
): [string, string][] {
  return [
    [roles.manager, 'manager'],
    [roles.architect, 'architect'],
    ...range(input.engineers).map((i): [string, string] => [roles.engineer, `engineer-${i}`]),
    ...range(input.interns).map((i): [string, string] => [roles.intern, `intern-${i}`]),
  ];
}

/** What a starting agent is told when the input gives its role no instructions. */
export function defaultInstructions(input: TeamWorkflowInput, role: string, name: string): string {
  if (input.backend === 'script') return `echo "${role} ${name}: no script given"`;
  const template = input.policy.roles[role]?.initialInstructions ?? `- Contribute to the team goal: {goal}`;
  return template.split('{goal}').join(input.goal);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** Accepts a checked request: the agent's record, its ledger entry, and its place in the start queue. */
export function accept(run: TeamRun, req: SpawnRequest, depth: number, source: string): AgentRecord {
  const { input, runId, counters } = run;
  const n = (counters[req.role] ?? 0) + 1;
  counters[req.role] = n;
  const id = `${req.role}-${n}`;
  const rec: AgentRecord = {
    id,
    name: req.name,
    role: req.role,
    depth,
    requestedBy: req.requestedBy,
    workflowId: teamAgentWorkflowId(runId, id),
    dir: agentDir(input.workspace, id),
    state: 'starting',
    requestedAt: new Date().toISOString(),
    costUsd: 0,
    turns: 0,
    tasks: { completed: 0, total: 0 },
    sessionId: input.backend === 'cli' ? uuid4() : undefined,
    instructions: req.instructions,
  };
  run.records.push(rec);
  // A draining team (patch `team-drain-queue`) leaves new agents to its next execution.
  (run.draining ? run.queued : run.pending).push(rec);
  run.ledger = addTeamAgent(run.ledger, { id, role: req.role }, run.policy.roles[req.role]?.budget);
  run.record('spawn', req.requestedBy, {
    agentId: id,
    name: req.name,
    role: req.role,
    depth,
    source,
    ...(run.draining ? { queued: true } : {}),
  });
  return rec;
}

/** Records a refused request where status and the audit show it. */
export function refuse(run: TeamRun, source: TeamRefusal['source'], req: unknown, reason: string): void {
  const request = refusedRequest(req);
  run.refusals.push({ at: new Date().toISOString(), source, request, reason: reason.slice(0, 500) });
  keepRecentRefusals(run.refusals);
  run.record('spawn_refused', request.requestedBy, { ...request, reason, source });
  if (run.refusals.length < 10)
    log.warn('spawn request refused', { runId: run.runId, ...request, reason: reason.slice(0, 300), source });
}

/** Validates and accepts a request; the requester's depth + 1 is the new agent's depth. */
export function admit(
  run: TeamRun,
  req: unknown,
  source: 'signal' | 'update',
): { rec: AgentRecord; duplicate: boolean } | string {
  const check = checkSpawnRequest(run.policy, run.view(), req);
  if (!check.ok) return check.reason;
  if (check.duplicateOf) return { rec: run.byId(check.duplicateOf)!, duplicate: true };
  const requester = run.byId(check.request.requestedBy)!;
  return { rec: accept(run, check.request, requester.depth + 1, source), duplicate: false };
}

/**
 * Why a draining team cannot take this request now, or undefined: the requests it queues ride in the
 * carry, which has a size bound (src/shared/team-carry `fitsInDrainQueue`). A request the team has seen
 * (a resend) is always answered. The sender asks again in a moment, in the next execution.
 */
export function drainBusy(run: TeamRun, req: unknown): string | undefined {
  if (!run.draining) return undefined;
  const check = checkSpawnRequest(run.policy, run.view(), req);
  if (!check.ok || check.duplicateOf) return undefined;
  if (fitsInDrainQueue(run.queued, check.request.instructions)) return undefined;
  return `the team is continuing as new with ${run.queued.length} requests queued; send this request again in a moment`;
}
