/**
 * `teamWorkflow`: a team of agents that grows at run time. It starts a manager and an architect (and
 * optionally engineers and interns), each a child `teamAgentWorkflow` with id `<runId>/<agentId>`.
 * Teammates are requested by signal `spawnAgent` or update `requestAgent` (whose validator refuses what
 * the hierarchy policy forbids); an accepted request starts its child in the same workflow task.
 * Requests are deduplicated by name, and child ids are deterministic, so a retried or replayed request
 * never starts a second agent. The run ends when every agent has finished (and is archived), or on
 * `stopTeam`.
 *
 * `teamAgentWorkflow`: one agent. It prepares `<workspace>/.team/<id>/` (instructions.md, tasks.md,
 * session.json), runs its process (`claude` turns of one session, or a script) until every task in
 * tasks.md is completed or it reports done, ends the process, and archives the directory as
 * `<id>-completed/`.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  uuid4,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import {
  HEARTBEAT_TIMEOUT,
  isFailureType,
  retryPolicy,
  RUN_WORKFLOW_TASK_TIMEOUT,
  SHORT_ACTIVITY_TIMEOUT,
  type FailureType,
} from '../src/shared/failures';
import type { Activities } from '../activities';
import {
  agentBudgetLimitsSignal,
  agentBudgetPausedSignal,
  auditHeadQuery,
  auditQuery,
  budgetQuery,
  BudgetRaiseRequestSchema,
  raiseBudgetUpdate,
  type BudgetRaiseRequest,
  type MeterLimitsMessage,
} from '../src/shared/messages';
import {
  getLimit,
  limitsFor,
  report as ledgerReport,
  setLimit,
  totals as ledgerTotals,
  type BudgetScope,
} from '../src/shared/budget';
import { chargeFromMeter, type MeterCharged } from '../src/shared/meter-charge';
import {
  addTeamAgent,
  checkTeamScope,
  teamLedger,
  teamRaiseCommand,
  teamReason,
} from '../src/shared/team-budget';
import { teamVerdict } from '../src/shared/team-outcome';
import {
  shouldContinueAsNew,
  TEAM_CONTINUE_AS_NEW_AT,
  type CarriedAgent,
  type TeamCarry,
} from '../src/shared/team-carry';
import { checkProof, OPERATOR, type CapabilityState } from '../src/shared/identity';
import { sha256Hex } from '../src/shared/sha256';
import type { AuditKind } from '../src/shared/audit';
import type { CliSubagent } from '../src/shared/spec';
import { BUDGET_RESUME_NOTE } from './agent';
import { createAuditTrail, type AuditCarry } from './audit';
import {
  agentDir,
  agentEndedSignal,
  agentInboxQuery,
  agentProgressSignal,
  checkMessage,
  checkSpawnRequest,
  deliverMessageSignal,
  messageAgentSignal,
  messagePrompt,
  reportStatusSignal,
  sendMessageUpdate,
  isActive,
  RefusalReportSchema,
  spoofReportSignal,
  SpoofReportSchema,
  renderPersona,
  requestAgentUpdate,
  spawnAgentSignal,
  spawnRefusedSignal,
  stopAgentSignal,
  stopTeamSignal,
  StopTeamRequestSchema,
  taskDoneUpdate,
  TaskDoneRequestSchema,
  teamAgentStatusQuery,
  teamAgentWorkflowId,
  TeamRole,
  teamStatusQuery,
  TeamWorkflowInputSchema,
  type AgentProgress,
  type MessageResult,
  type SpawnRequest,
  type SpawnResult,
  type TeamAgentOutcome,
  type TeamAgentRow,
  type TeamAgentSettings,
  type TeamAgentStatus,
  type TeamBackend,
  type TeamMessage,
  type TeamRefusal,
  type TeamState,
  type TeamStatus,
  type TeamTask,
  type TeamWorkflowInput,
} from '../src/shared/team';

/** Input of one team agent's workflow. */
export interface TeamAgentInput {
  runId: string;
  goal: string;
  workspace: string;
  outputsDir: string;
  backend: TeamBackend;
  agent: { id: string; name: string; role: string; depth: number; requestedBy: string };
  /** What the requester asked for: the first prompt (cli) or the shell script (script). */
  instructions: string;
  title: string;
  persona: string;
  /** Roles this agent may request (already narrowed by the depth limit). */
  canRequest: string[];
  settings: TeamAgentSettings;
  /** From the role's agent definition; they win over `settings.model`/`settings.maxTurns`. */
  model?: string;
  maxTurns?: number;
  /** Subagents of the role, handed to `claude --agents`. */
  subagents?: Record<string, CliSubagent>;
  /** The `claude` session of a cli agent, chosen by the team so that its status shows it from the start. */
  sessionId?: string;
  /**
   * The agent's capability: the file the spawning activity reads its secret from (never the secret), and
   * the anchor of its `agent` chain, which proves `taskDone` requests. Absent for teams started before
   * capabilities existed.
   */
  capability?: { file: string; anchor: string };
  /**
   * Set when the team keeps a budget: every model request of the agent is admitted by the metering
   * gateway under these limits (its role is its phase), and a refusal pauses the agent in its own session
   * until the team sends new limits. Absent for teams started before team budgets.
   */
  meter?: { limits: MeterLimitsMessage };
}

/** What a team agent's workflow returns (src/shared/team TeamAgentOutcome). */
export type TeamAgentResult = TeamAgentOutcome;

/** Who the agents a team starts with were requested by: the human operator who started the team. */
export const TEAM_STARTER = OPERATOR;
/** The newest audit entries the status query shows (the file and query `audit` have them all). */
const AUDIT_IN_STATUS = 200;
/** Teams started before agent capabilities existed take requests without proof when replayed. */
export const CAPABILITY_PATCH = 'agent-capabilities';
/**
 * Patch id: the team keeps a ledger charged from its agents' meters, and its limits bind every agent
 * (issue #9). Teams recorded before it read no meters.
 */
export const TEAM_BUDGET_PATCH = 'team-budgets';
/**
 * Patch id: a failed agent's workflow fails (its result rides in the failure's details), and a team
 * whose agents all failed (or one failed under `onAgentFailure: stop`) fails (issue #13). Before it,
 * both completed with the failure inside their result.
 */
export const HONEST_OUTCOMES_PATCH = 'team-honest-outcomes';
/**
 * Patch id: the team continues as new before its history grows large; its agents are started with
 * parent close policy ABANDON (they outlive the execution that started them) and report their end by
 * signal `agentEnded` (issue #13). Before it, a team never continued and its agents reported nothing.
 */
export const LONG_TEAMS_PATCH = 'team-continue-as-new';
/** Failure type of a model turn stopped by a budget (activities/meter BUDGET_EXCEEDED). */
const BUDGET_EXCEEDED = 'BudgetExceeded';
/** How long audit entries gather before they are appended to audit.jsonl together. */
const AUDIT_BATCH_WINDOW = '1 second';

// ---------------------------------------------------------------------------------------------------
// teamWorkflow
// ---------------------------------------------------------------------------------------------------

const identity = proxyActivities<Pick<Activities, 'issueCapability'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});
const meters = proxyActivities<Pick<Activities, 'readMeter'>>({
  startToCloseTimeout: '1 minute',
  retry: retryPolicy(),
});

/** The budget side of a metered agent: what was charged from its meter, and whether a budget holds it. */
interface MeterState {
  charged: MeterCharged;
  /** Meter reads of one agent run one after another, so that charges follow the meter's growth. */
  chain: Promise<void>;
  running: boolean;
  paused: boolean;
}

interface AgentRecord extends TeamAgentRow {
  instructions: string;
  handle?: ChildWorkflowHandle<typeof teamAgentWorkflow>;
  /** Started by an earlier execution of the team: signalled by id, its end learnt from `agentEnded`. */
  inherited?: boolean;
  /** The agent's `team` chain: what its next request must prove. */
  cap?: CapabilityState;
  capability?: TeamAgentInput['capability'];
}

/** Whether a request proved its requester: `duplicate` marks a resent request that was accepted before. */
type Authentication = { ok: true; replay?: boolean } | { ok: false; reason: string };

export async function teamWorkflow(raw: TeamWorkflowInput, carry?: TeamCarry): Promise<TeamStatus> {
  const parsed = TeamWorkflowInputSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`invalid team input: ${issues}`, 'InvalidTeamInput');
  }
  const input = parsed.data;
  const { runId, policy } = input;
  const startedAt = carry?.startedAt ?? new Date().toISOString();
  let state: TeamState = carry?.state ?? 'running';
  let completedAt: string | undefined = undefined;
  let stopReason: string | undefined = carry?.stopReason;
  let stopSent = carry?.stopSent ?? false;
  // Agents still active were started by an earlier execution: they are signalled by id.
  const records: AgentRecord[] = (carry?.agents ?? []).map((a) => ({
    ...a,
    instructions: '',
    ...(isActive(a.state) ? { inherited: true } : {}),
  }));
  const pending: AgentRecord[] = [];
  const counters: Record<string, number> = { ...carry?.counters };
  const refusals: TeamRefusal[] = [...(carry?.refusals ?? [])];
  const trail = createAuditTrail({
    runId,
    outputsDir: input.outputsDir,
    persist: true,
    ...(carry ? { carry: carry.audit as AuditCarry } : {}),
  });
  const capabilities = patched(CAPABILITY_PATCH);
  const budgets = patched(TEAM_BUDGET_PATCH);
  const honest = patched(HONEST_OUTCOMES_PATCH);
  const longTeams = patched(LONG_TEAMS_PATCH);
  const continueAt = { ...TEAM_CONTINUE_AS_NEW_AT, ...input.continueAsNewAt };
  /** The agent whose failure stopped the team (policy `onAgentFailure: stop`). */
  let failedBy: AgentRecord | undefined = carry?.failedBy
    ? records.find((r) => r.id === carry.failedBy)
    : undefined;
  /** The team's budget ledger (src/shared/budget): roles are its phases (src/shared/team-budget). */
  let ledger = carry?.ledger ?? teamLedger(input.budget);
  /** Bumped by every `raiseBudget`: a pause that a raise overtook is not recorded. */
  let budgetVersion = carry?.budgetVersion ?? 0;
  /** Metered agents by id. */
  const metered = new Map<string, MeterState>(
    (carry?.meters ?? []).map(([id, m]) => [id, { ...m, chain: Promise.resolve() }]),
  );
  /** Agents a budget holds → why, with the command that raises it. */
  const pauses = new Map<string, string>(carry?.pauses ?? []);
  /** Agents whose end is being processed, and meter reads in flight: the team continues only without. */
  let finishing = 0;
  let reading = 0;
  /** Agents whose end has been processed (from their result, their failure, or `agentEnded`). */
  const ended = new Set<string>(records.filter((r) => !isActive(r.state)).map((r) => r.id));
  const record = (kind: AuditKind, actor: string, details: Record<string, unknown>) =>
    void trail.record(kind, details, actor);
  const byId = (id: string) => records.find((r) => r.id === id);
  const view = () => ({ state, agents: records });

  function accept(req: SpawnRequest, depth: number, source: string): AgentRecord {
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
    records.push(rec);
    pending.push(rec);
    ledger = addTeamAgent(ledger, { id, role: req.role }, policy.roles[req.role]?.budget);
    record('spawn', req.requestedBy, { agentId: id, name: req.name, role: req.role, depth, source });
    return rec;
  }

  function refuse(source: TeamRefusal['source'], req: unknown, reason: string): void {
    const r = (req ?? {}) as Partial<Record<'role' | 'name' | 'requestedBy', unknown>>;
    // Whatever the sender put there, the record holds short strings.
    const str = (v: unknown) =>
      typeof v === 'string' ? v.slice(0, 100) : JSON.stringify(v ?? '?').slice(0, 100);
    const request = { role: str(r.role), name: str(r.name), requestedBy: str(r.requestedBy) };
    refusals.push({ at: new Date().toISOString(), source, request, reason: reason.slice(0, 500) });
    // A flood of bad requests must not grow the status without bound: the audit keeps every one.
    if (refusals.length > 50) refusals.splice(0, refusals.length - 50);
    record('spawn_refused', request.requestedBy, { ...request, reason, source });
    if (refusals.length < 10)
      log.warn('spawn request refused', { runId, ...request, reason: reason.slice(0, 300), source });
  }

  /**
   * Checks that a request comes from the agent it names: its proof must be the next element of that
   * agent's `team` chain. A failure is audited as a spoof attempt, naming the agent whose proof it was
   * when it belongs to another agent of the team.
   */
  function authenticate(req: unknown, source: 'signal' | 'update'): Authentication {
    if (!capabilities) return { ok: true };
    const r = (req ?? {}) as { requestedBy?: unknown; proof?: unknown; name?: unknown; role?: unknown };
    const claimed = typeof r.requestedBy === 'string' ? r.requestedBy : JSON.stringify(r.requestedBy ?? null);
    const rec = typeof r.requestedBy === 'string' ? byId(r.requestedBy) : undefined;
    let reason: string;
    if (!rec?.cap) {
      reason = `"${claimed.slice(0, 100)}" is not an agent of this team with a capability`;
    } else {
      const check = checkProof(rec.cap, r.proof);
      if (check.ok) {
        rec.cap = check.next;
        if (!isActive(rec.state)) return { ok: false, reason: `requester ${rec.id} has ${rec.state}` };
        return { ok: true };
      }
      // A resent request (same proof, same teammate) is the duplicate of one accepted before: harmless.
      const same = records.find((a) => a.name === r.name);
      if (check.replayed && same && same.role === r.role && same.requestedBy === rec.id) {
        return { ok: true, replay: true };
      }
      reason = check.reason;
    }
    // Whose proof was it? Another agent's valid proof is consumed: it is in history now.
    const proof = typeof r.proof === 'string' ? r.proof : undefined;
    const digest = proof && /^[0-9a-f]{64}$/.test(proof) ? sha256Hex(proof) : undefined;
    const owner = digest ? records.find((a) => a.cap && a.cap.anchor === digest) : undefined;
    if (owner?.cap && proof) owner.cap = { anchor: proof, used: owner.cap.used + 1 };
    const message = `spoof attempt: the request does not prove it comes from ${claimed.slice(0, 100)} (${reason})${
      owner ? `; the proof is ${owner.id}'s` : ''
    }`;
    record('spoof_attempt', owner?.id ?? 'unknown', {
      claimed,
      source,
      request: { role: r.role, name: r.name },
      reason,
      ...(owner ? { by: owner.id } : {}),
    });
    refusals.push({
      at: new Date().toISOString(),
      source,
      request: {
        role: String(r.role).slice(0, 100),
        name: String(r.name).slice(0, 100),
        requestedBy: claimed.slice(0, 100),
      },
      reason: message,
    });
    if (refusals.length > 50) refusals.splice(0, refusals.length - 50);
    log.warn('spoof attempt refused', { runId, claimed: claimed.slice(0, 100), by: owner?.id, source });
    return { ok: false, reason: message };
  }

  /** Validates and accepts a request; the requester's depth + 1 is the new agent's depth. */
  function admit(
    req: unknown,
    source: 'signal' | 'update',
  ): { rec: AgentRecord; duplicate: boolean } | string {
    const check = checkSpawnRequest(policy, view(), req);
    if (!check.ok) return check.reason;
    if (check.duplicateOf) return { rec: byId(check.duplicateOf)!, duplicate: true };
    const requester = byId(check.request.requestedBy)!;
    return { rec: accept(check.request, requester.depth + 1, source), duplicate: false };
  }

  const spawnResult = (rec: AgentRecord, duplicate: boolean): SpawnResult => ({
    agentId: rec.id,
    name: rec.name,
    role: rec.role,
    workflowId: rec.workflowId,
    dir: rec.dir,
    depth: rec.depth,
    state: rec.state,
    duplicate,
  });

  setHandler(spawnAgentSignal, (req) => {
    const auth = authenticate(req, 'signal');
    if (!auth.ok) return;
    const out = admit(req, 'signal');
    // A signal cannot be refused to its sender, so the refusal is recorded where status shows it.
    if (typeof out === 'string') refuse('signal', req, out);
    else if (out.duplicate) log.info('duplicate spawn request ignored', { runId, agentId: out.rec.id });
  });
  setHandler(
    requestAgentUpdate,
    async (req): Promise<SpawnResult> => {
      const auth = authenticate(req, 'update');
      if (!auth.ok) throw ApplicationFailure.nonRetryable(auth.reason, 'SpoofAttempt');
      const out = admit(req, 'update');
      if (typeof out === 'string') {
        // Refused here, not in the validator, so that the refusal is on record whoever sent it.
        if (capabilities) refuse('update', req, out);
        throw ApplicationFailure.nonRetryable(out, 'SpawnRefused');
      }
      const { rec, duplicate } = out;
      await condition(() => rec.state !== 'starting');
      return spawnResult(rec, duplicate);
    },
    {
      validator: (req) => {
        // With capabilities, every well-formed request reaches the handler, which records its outcome.
        const check = checkSpawnRequest(policy, view(), req);
        if (!check.ok && (!capabilities || check.reason.startsWith('invalid request')))
          throw new Error(check.reason);
      },
    },
  );
  setHandler(spawnRefusedSignal, (report) => {
    // Clients of teams without capabilities report the validator's refusals; now the handler records them.
    if (capabilities) return;
    const r = RefusalReportSchema.safeParse(report);
    if (r.success) refuse('update', r.data.request, r.data.reason);
  });
  setHandler(spoofReportSignal, (report) => {
    // An agent workflow refused a request made in its agent's name (e.g. `team task done`).
    const r = SpoofReportSchema.safeParse(report);
    if (!r.success) return;
    const rec = byId(r.data.agentId);
    if (!rec) return;
    record('spoof_attempt', 'unknown', {
      claimed: rec.id,
      source: r.data.source,
      request: r.data.request,
      reason: r.data.reason,
    });
  });
  /** How to reach an agent's workflow: its child handle, or by id when an earlier execution started it. */
  function agentHandle(rec: AgentRecord) {
    return rec.handle ?? (rec.inherited ? getExternalWorkflowHandle(rec.workflowId) : undefined);
  }
  /** Hands an accepted message to its agent's workflow (once that has started), on the audit trail. */
  async function deliver(agentId: string, from: string, text: string): Promise<MessageResult> {
    const rec = byId(agentId)!;
    record('run', from, { event: 'message', to: rec.id, from, text: text.slice(0, 2000) });
    await condition(() => agentHandle(rec) !== undefined || !isActive(rec.state));
    try {
      const handle = agentHandle(rec);
      if (!handle) throw new Error('never started');
      await handle.signal(deliverMessageSignal, { from, text });
    } catch (err) {
      // It ended between the check and the delivery (its result is not processed yet).
      const state = isActive(rec.state) ? 'ended' : rec.state;
      record('run', from, { event: 'message_refused', to: rec.id, reason: describe(err) });
      throw ApplicationFailure.nonRetryable(
        `agent ${rec.id} (${rec.name}) has ended: ${state}`,
        'MessageRefused',
      );
    }
    return { to: rec.id, name: rec.name, state: rec.state };
  }
  /**
   * A message from an agent must prove it comes from that agent (as its requests do); the operator's
   * messages (`from: operator`) carry no proof. A refusal is audited as a spoof attempt.
   */
  function authenticateSender(req: { from: string; proof?: string }, source: 'signal' | 'update') {
    if (req.from === OPERATOR) return { ok: true as const };
    return authenticate({ requestedBy: req.from, proof: req.proof }, source);
  }
  setHandler(messageAgentSignal, async (req) => {
    const check = checkMessage(view(), req);
    if (!check.ok) {
      const from = typeof req?.from === 'string' ? req.from.slice(0, 100) : OPERATOR;
      record('run', from, {
        event: 'message_refused',
        to: String(req?.to).slice(0, 100),
        reason: check.reason,
      });
      log.warn('message refused', { runId, reason: check.reason });
      return;
    }
    if (!authenticateSender(check.request, 'signal').ok) return;
    // A signal has no caller to tell: a late refusal is on the audit trail (deliver records it).
    await deliver(check.agentId, check.request.from, check.request.text).catch(() => undefined);
  });
  setHandler(
    sendMessageUpdate,
    async (req): Promise<MessageResult> => {
      const check = checkMessage(view(), req);
      if (!check.ok) throw ApplicationFailure.nonRetryable(check.reason, 'MessageRefused');
      const auth = authenticateSender(check.request, 'update');
      if (!auth.ok) throw ApplicationFailure.nonRetryable(auth.reason, 'SpoofAttempt');
      return deliver(check.agentId, check.request.from, check.request.text);
    },
    {
      validator: (req) => {
        const check = checkMessage(view(), req);
        if (!check.ok) throw new Error(check.reason);
      },
    },
  );
  setHandler(stopTeamSignal, (raw) => {
    const req = StopTeamRequestSchema.safeParse(raw);
    if (!req.success) {
      // A signal cannot be refused to its sender: the refusal goes where status and the audit show it.
      const reason = `stopTeam refused: ${req.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ')}`;
      record('run', OPERATOR, {
        event: 'team_stop_refused',
        reason,
        payload: JSON.stringify(raw ?? null).slice(0, 200),
      });
      log.warn('stopTeam signal refused', { runId, reason });
      return;
    }
    if (state !== 'running') return;
    stopReason = req.data?.reason || 'stopped on request';
    state = 'stopping';
    record('run', OPERATOR, { event: 'team_stop_requested', reason: stopReason });
  });
  setHandler(agentProgressSignal, (p: AgentProgress) => {
    const rec = byId(p.agentId);
    if (!rec) return;
    if (p.state && isActive(rec.state)) rec.state = p.state;
    if (p.startedAt) rec.startedAt ??= p.startedAt;
    if (p.sessionId) rec.sessionId = p.sessionId;
    if (p.costUsd !== undefined) rec.costUsd = p.costUsd;
    if (p.turns !== undefined) rec.turns = p.turns;
    if (p.tasks) rec.tasks = p.tasks;
    if (p.note !== undefined) rec.note = p.note;
    // A round ended: its spend goes into the ledger now, so `budget status` follows the team.
    if (p.costUsd !== undefined) void chargeAgent(rec);
  });
  setHandler(agentEndedSignal, async (r) => {
    // Sent by the agent's own workflow as it ends; only an agent of this team, once.
    const rec = r && typeof r.agentId === 'string' ? byId(r.agentId) : undefined;
    if (!rec || ended.has(rec.id) || !['completed', 'failed', 'stopped'].includes(String(r.state))) return;
    await finishAgent(rec, { result: r });
  });
  setHandler(teamStatusQuery, (): TeamStatus => status());
  setHandler(auditQuery, (req) => trail.page(req).entries);
  setHandler(auditHeadQuery, () => trail.head());

  // ---- budgets ----
  const isOver = () => state === 'completed' || state === 'stopped' || state === 'failed';
  const checkRaise = (req: unknown): BudgetRaiseRequest => {
    const parsed = BudgetRaiseRequestSchema.safeParse(req);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`);
      throw new Error(`invalid raiseBudget request: ${issues.join('; ')}`);
    }
    if (!budgets) throw new Error(`team run ${runId} was started before team budgets: it has none to change`);
    if (isOver()) throw new Error(`team run ${runId} has ${state}; its budget can no longer change`);
    const problem = checkTeamScope(parsed.data.scope, {
      runId,
      roles: Object.keys(policy.roles),
      agents: records,
    });
    if (problem) throw new Error(problem);
    return parsed.data;
  };
  setHandler(
    raiseBudgetUpdate,
    (req) => {
      const valid = checkRaise(req);
      const previous = getLimit(ledger, valid.scope);
      ledger = setLimit(ledger, valid.scope, { usd: valid.usd, tokens: valid.tokens });
      const wasPaused = pauses.size > 0;
      budgetVersion += 1;
      const limit = getLimit(ledger, valid.scope);
      record('budget', valid.actor ?? OPERATOR, {
        event: 'raise',
        scope: valid.scope,
        previous,
        limit,
        wasPaused,
      });
      log.info('budget changed', { runId, scope: valid.scope, limit });
      // Running agents get the new limits; those a budget held resume in their own session.
      for (const rec of records) {
        const m = metered.get(rec.id);
        if (!m?.running) continue;
        if (m.paused) {
          m.paused = false;
          pauses.delete(rec.id);
          record('budget', 'workflow', { event: 'resume', agentId: rec.id, role: rec.role });
        }
        getExternalWorkflowHandle(rec.workflowId)
          .signal(agentBudgetLimitsSignal, limitsFor(ledger, rec.role, rec.id))
          .catch((err: unknown) =>
            log.warn('could not send limits to agent', { agentId: rec.id, error: describe(err) }),
          );
      }
      return { scope: valid.scope, limit, wasPaused };
    },
    { validator: (req) => void checkRaise(req) },
  );
  setHandler(agentBudgetPausedSignal, async (p) => {
    const rec = records.find((r) => r.workflowId === p.workflowId);
    const m = rec ? metered.get(rec.id) : undefined;
    if (!rec || !m?.running) return;
    const scope: BudgetScope =
      p.level === 'run'
        ? { level: 'run' }
        : p.level === 'phase'
          ? { level: 'phase', phase: rec.role }
          : { level: 'agent', phase: rec.role, agent: rec.id };
    // What the agent spent so far goes into the ledger first, so the paused team shows it.
    const seen = budgetVersion;
    await chargeAgent(rec);
    // Ended meanwhile, or a raise already sent new limits: nothing waits any more.
    if (!m.running || budgetVersion !== seen) return;
    m.paused = true;
    const reason = teamReason(p.reason, rec.role);
    // A team or role limit holds every agent that hits it: say who waits.
    const who = scope.level === 'agent' ? '' : ` (${rec.id} waits)`;
    pauses.set(rec.id, `${reason}${who}; raise it with: ${teamRaiseCommand(runId, scope, p.unit)}`);
    record('budget', 'workflow', { event: 'pause', reason, agentId: rec.id, role: rec.role, scope });
    log.warn('agent paused: budget exhausted', { runId, agentId: rec.id, reason });
  });
  setHandler(budgetQuery, () => ({
    runId,
    kind: 'team' as const,
    state: state === 'running' && pauses.size > 0 ? 'paused' : state,
    pausedReason: pausedReason(),
    onExceeded: 'pause' as const,
    report: ledgerReport(ledger),
    ledger,
  }));

  function pausedReason(): string | undefined {
    return pauses.size > 0 ? [...pauses.values()].join('; ') : undefined;
  }

  /** Reads an agent's meter and charges the ledger what it was served since the last read. */
  function chargeAgent(rec: AgentRecord): Promise<void> {
    const m = metered.get(rec.id);
    if (!m) return Promise.resolve();
    reading += 1;
    m.chain = m.chain.then(async () => {
      try {
        const reading = await CancellationScope.nonCancellable(() =>
          meters.readMeter({ runId, meterId: rec.id }),
        );
        const r = chargeFromMeter(
          ledger,
          m.charged,
          { key: rec.workflowId, phase: rec.role, agent: rec.id },
          reading,
        );
        ledger = r.ledger;
        m.charged = r.charged;
        if (r.microUsd > 0 || r.unknown.length > 0) {
          record('budget', 'workflow', {
            event: 'charge',
            agentId: rec.id,
            role: rec.role,
            costUsd: r.microUsd / 1e6,
            microUsd: r.microUsd,
            ...(r.unknown.length > 0 ? { unknownModels: r.unknown } : {}),
          });
        }
      } catch (err) {
        log.warn('meter not read', { runId, agentId: rec.id, error: describe(err) });
      } finally {
        reading -= 1;
      }
    });
    return m.chain;
  }

  /** An ended agent: the rest of its meter is charged; its cost is the ledger's, to the micro-dollar. */
  async function settleAgent(rec: AgentRecord): Promise<void> {
    const m = metered.get(rec.id);
    if (!m) return;
    await chargeAgent(rec);
    m.running = false;
    m.paused = false;
    pauses.delete(rec.id);
    const spent = ledgerReport(ledger).agents.find((a) => a.phase === rec.role && a.agent === rec.id);
    rec.costUsd = spent?.usd ?? 0;
  }

  function status(): TeamStatus {
    const agents = records.map(
      ({ instructions: _i, handle: _h, inherited: _n, cap, capability: _c, ...row }) => ({
        ...row,
        ...(cap ? { proofsUsed: cap.used } : {}),
      }),
    );
    return {
      runId,
      goal: input.goal,
      state,
      backend: input.backend,
      workspace: input.workspace,
      outputsDir: input.outputsDir,
      startedAt,
      completedAt,
      stopReason,
      ...(pauses.size > 0 ? { pausedReason: pausedReason() } : {}),
      agents,
      refusals,
      audit: trail.recent().slice(-AUDIT_IN_STATUS),
      totals: {
        // With a ledger the total is summed in micro-dollars: no drift from adding rounded figures.
        costUsd: budgets ? ledgerTotals(ledger).usd : round6(records.reduce((s, r) => s + r.costUsd, 0)),
        agents: records.length,
        active: records.filter((r) => isActive(r.state)).length,
      },
      ...(carry ? { continuedAsNew: carry.continuedAsNew } : {}),
      policy: {
        maxTeamSize: policy.maxTeamSize,
        maxRequestDepth: policy.maxRequestDepth,
        canRequest: Object.fromEntries(Object.entries(policy.roles).map(([k, v]) => [k, v.canRequest])),
      },
    };
  }

  function agentInput(rec: AgentRecord): TeamAgentInput {
    const role = policy.roles[rec.role]!;
    return {
      runId,
      goal: input.goal,
      workspace: input.workspace,
      outputsDir: input.outputsDir,
      backend: input.backend,
      agent: { id: rec.id, name: rec.name, role: rec.role, depth: rec.depth, requestedBy: rec.requestedBy },
      instructions: rec.instructions,
      title: role.title,
      persona: role.persona,
      canRequest: rec.depth < policy.maxRequestDepth ? role.canRequest : [],
      settings: policy.agent,
      model: role.model,
      maxTurns: role.maxTurns,
      subagents: role.subagents,
      sessionId: rec.sessionId,
      ...(rec.capability ? { capability: rec.capability } : {}),
      ...(metered.has(rec.id) ? { meter: { limits: limitsFor(ledger, rec.role, rec.id) } } : {}),
    };
  }

  async function stopAgent(rec: AgentRecord): Promise<void> {
    try {
      await agentHandle(rec)?.signal(stopAgentSignal, { reason: stopReason });
    } catch (err) {
      // The child may have completed in the meantime: nothing left to stop.
      log.info('stop signal not delivered', { agentId: rec.id, error: describe(err) });
      // An inherited agent that cannot be reached has ended without telling (terminated): it is over.
      if (rec.inherited && isActive(rec.state)) {
        await finishAgent(rec, {
          err: new Error(`its workflow cannot be reached (${describe(err)}); it ended without reporting`),
        });
      }
    }
  }

  async function launch(rec: AgentRecord): Promise<void> {
    try {
      if (capabilities) {
        // Issued before the agent's process can exist: its first request always finds the anchor here.
        const cap = await identity.issueCapability({ outputsDir: input.outputsDir, runId, agentId: rec.id });
        rec.cap = { anchor: cap.teamAnchor, used: 0 };
        rec.capability = { file: cap.file, anchor: cap.agentAnchor };
      }
      // Only model agents spend: they reach the model through the metering gateway, under the limits.
      if (budgets && input.backend === 'cli')
        metered.set(rec.id, { charged: {}, chain: Promise.resolve(), running: true, paused: false });
      rec.handle = await startChild(teamAgentWorkflow, {
        workflowId: rec.workflowId,
        args: [agentInput(rec)],
        // It must outlive this execution when the team continues as new; its tasks get as long as the
        // team's (a busy worker replaying after an eviction needs more than the default 10 s).
        ...(longTeams
          ? { parentClosePolicy: ParentClosePolicy.ABANDON, workflowTaskTimeout: RUN_WORKFLOW_TASK_TIMEOUT }
          : {}),
      });
    } catch (err) {
      metered.delete(rec.id);
      rec.state = 'failed';
      rec.error = `could not start: ${describe(err)}`;
      record('run', 'workflow', { event: 'agent_failed', agentId: rec.id, error: rec.error });
      return;
    }
    if (rec.state === 'starting') rec.state = 'running';
    rec.startedAt ??= new Date().toISOString();
    if (stopSent) await stopAgent(rec);
    let outcome: { result: TeamAgentResult } | { err: unknown };
    try {
      outcome = { result: await rec.handle.result() };
    } catch (err) {
      outcome = { err };
    }
    await finishAgent(rec, outcome);
  }

  /**
   * Processes an agent's end once, whichever tells first: its child's result or failure (agents this
   * execution started), or its `agentEnded` signal (any agent, and the only news of inherited ones).
   */
  async function finishAgent(
    rec: AgentRecord,
    outcome: { result: TeamAgentResult } | { err: unknown },
  ): Promise<void> {
    if (ended.has(rec.id)) return;
    ended.add(rec.id);
    finishing += 1;
    try {
      await processEnd(rec, outcome);
    } finally {
      finishing -= 1;
    }
  }

  async function processEnd(
    rec: AgentRecord,
    outcome: { result: TeamAgentResult } | { err: unknown },
  ): Promise<void> {
    try {
      if ('err' in outcome) throw outcome.err;
      const r = outcome.result;
      rec.state = r.state;
      rec.costUsd = r.costUsd;
      rec.turns = r.turns;
      rec.tasks = r.tasks;
      rec.archivedTo = r.archivedTo;
      rec.sessionId = r.sessionId ?? rec.sessionId;
      rec.error = r.error;
      if (r.errorType) rec.errorType = r.errorType;
      rec.completedAt = r.completedAt;
    } catch (err) {
      const carried = carriedAgentResult(err);
      rec.state = 'failed';
      rec.costUsd = carried?.costUsd ?? rec.costUsd;
      rec.turns = carried?.turns ?? rec.turns;
      rec.tasks = carried?.tasks ?? rec.tasks;
      rec.archivedTo = carried?.archivedTo;
      rec.sessionId = carried?.sessionId ?? rec.sessionId;
      rec.error = carried?.error ?? describe(err);
      rec.errorType = carried?.errorType ?? failureType(err);
      rec.completedAt = carried?.completedAt ?? new Date().toISOString();
    }
    await settleAgent(rec);
    record('run', rec.id, {
      event: `agent_${rec.state}`,
      agentId: rec.id,
      archivedTo: rec.archivedTo,
      costUsd: rec.costUsd,
      error: rec.error,
      ...(rec.errorType ? { errorType: rec.errorType } : {}),
    });
    if (honest && rec.state === 'failed') reactToFailure(rec);
  }

  /** The policy's reaction to a failed agent: `stop` stops the rest of the team, which then fails. */
  function reactToFailure(rec: AgentRecord): void {
    if (policy.onAgentFailure !== 'stop' || state !== 'running') return;
    failedBy = rec;
    stopReason = `agent ${rec.id} (${rec.name}) failed: ${(rec.error ?? rec.errorType ?? 'failed').slice(0, 300)}`;
    state = 'stopping';
    record('run', 'workflow', { event: 'team_stop_requested', reason: stopReason, policy: 'stop' });
  }

  /** Whether this execution's history is big enough to continue as new. */
  const historyFull = () => {
    const info = workflowInfo();
    return shouldContinueAsNew(
      { length: info.historyLength, size: info.historySize, suggested: info.continueAsNewSuggested },
      continueAt,
    );
  };
  /** Nothing in flight that the next execution could not pick up. */
  const quiet = () =>
    pending.length === 0 &&
    finishing === 0 &&
    reading === 0 &&
    records.every((r) => r.state !== 'starting') &&
    allHandlersFinished();

  /** What the next execution starts from: rows and references, never transcripts or instructions. */
  function carryState(): TeamCarry {
    const agents = records.map(
      ({ instructions: _i, handle: _h, inherited: _n, ...row }): CarriedAgent => row,
    );
    return {
      startedAt,
      continuedAsNew: (carry?.continuedAsNew ?? 0) + 1,
      state,
      ...(stopReason !== undefined ? { stopReason } : {}),
      stopSent,
      ...(failedBy ? { failedBy: failedBy.id } : {}),
      counters,
      agents,
      refusals,
      ledger,
      budgetVersion,
      meters: [...metered].map(([id, m]) => [
        id,
        { charged: m.charged, running: m.running, paused: m.paused },
      ]),
      pauses: [...pauses],
      audit: trail.carry(),
    };
  }

  // ---- main ----
  if (carry) {
    record('run', 'workflow', {
      event: 'team_continued',
      execution: carry.continuedAsNew + 1,
      active: records.filter((r) => isActive(r.state)).length,
    });
  } else {
    record('run', TEAM_STARTER, {
      event: 'team_started',
      goal: input.goal,
      backend: input.backend,
      engineers: input.engineers,
      interns: input.interns,
    });
    const initial: [string, string][] = [
      [TeamRole.manager, 'manager'],
      [TeamRole.architect, 'architect'],
      ...range(input.engineers).map((i): [string, string] => [TeamRole.engineer, `engineer-${i}`]),
      ...range(input.interns).map((i): [string, string] => [TeamRole.intern, `intern-${i}`]),
    ];
    for (const [role, name] of initial) {
      if (!policy.roles[role]) {
        throw ApplicationFailure.nonRetryable(
          `the hierarchy policy has no role "${role}"`,
          'InvalidTeamInput',
        );
      }
      const instructions = input.instructions[role] ?? defaultInstructions(input, role, name);
      accept({ role, name, instructions, requestedBy: TEAM_STARTER }, 0, 'start');
    }
  }
  // The audit file is written in the background, in batches, so that no request waits for a disk write
  // and a burst of requests costs one activity. Entries not yet written are workflow state: none is lost.
  const auditWriter = trail.background(AUDIT_BATCH_WINDOW);
  const launches: Promise<void>[] = [];
  for (;;) {
    await condition(
      () =>
        pending.length > 0 ||
        (stopReason !== undefined && !stopSent) ||
        records.every((r) => !isActive(r.state)) ||
        (longTeams && historyFull()),
    );
    while (pending.length > 0) launches.push(launch(pending.shift()!));
    if (stopReason !== undefined && !stopSent) {
      stopSent = true;
      await Promise.all(records.filter((r) => agentHandle(r) && isActive(r.state)).map(stopAgent));
    }
    if (pending.length === 0 && records.every((r) => !isActive(r.state))) break;
    if (longTeams && historyFull()) {
      // Drain: every accepted request started, every handler and agent end processed. A request that
      // arrives meanwhile is launched here too; nothing is dropped at the boundary.
      for (;;) {
        while (pending.length > 0) launches.push(launch(pending.shift()!));
        await condition(() => pending.length > 0 || quiet());
        if (quiet()) break;
      }
      if (records.every((r) => !isActive(r.state))) break;
      if (stopReason === undefined || stopSent) {
        log.info('team continues as new', {
          runId,
          events: workflowInfo().historyLength,
          bytes: workflowInfo().historySize,
          agents: records.length,
          active: records.filter((r) => isActive(r.state)).length,
        });
        // Entries not yet written ride in the carry; the next execution writes them (appends are idempotent).
        return await continueAsNew<typeof teamWorkflow>(input, carryState());
      }
    }
  }
  await Promise.all(launches);
  const verdict = honest ? teamVerdict(records, failedBy?.id) : undefined;
  state = verdict ? 'failed' : stopReason !== undefined ? 'stopped' : 'completed';
  completedAt = new Date().toISOString();
  record('run', 'workflow', {
    event: `team_${state}`,
    agents: records.length,
    costUsd: status().totals.costUsd,
    ...(verdict ? { reason: verdict.message, failed: verdict.failed } : {}),
  });
  await auditWriter.close();
  await condition(allHandlersFinished);
  if (verdict) {
    // The status query still answers (state `failed`); the failure names the agents, kept short.
    throw ApplicationFailure.create({
      type: 'TeamFailed',
      message: verdict.message,
      nonRetryable: true,
      // Bounded: a team of hundreds keeps its history small; the status query lists every agent.
      details: [{ runId, failedCount: verdict.failed.length, failed: verdict.failed.slice(0, 50) }],
    });
  }
  return status();
}

function defaultInstructions(input: TeamWorkflowInput, role: string, name: string): string {
  if (input.backend === 'script') return `echo "${role} ${name}: no script given"`;
  const template = input.policy.roles[role]?.initialInstructions ?? `- Contribute to the team goal: {goal}`;
  return template.split('{goal}').join(input.goal);
}

// ---------------------------------------------------------------------------------------------------
// teamAgentWorkflow
// ---------------------------------------------------------------------------------------------------

const localFiles = proxyLocalActivities<
  Pick<Activities, 'prepareTeamAgent' | 'readTeamTasks' | 'markTeamTasks'>
>({
  startToCloseTimeout: '30 seconds',
  retry: retryPolicy(),
});
const files = proxyActivities<Pick<Activities, 'archiveTeamAgent'>>({
  startToCloseTimeout: SHORT_ACTIVITY_TIMEOUT,
  retry: retryPolicy(),
});
const model = proxyActivities<Pick<Activities, 'claudeTurn'>>({
  startToCloseTimeout: '1 hour',
  // Short enough that a cancellation (stop, completion) reaches the process within seconds: the SDK sends
  // heartbeats, and learns of cancellation, every 0.8 × heartbeatTimeout.
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  // An unset cancellationType encodes as TRY_CANCEL: the workflow would move on while the process runs.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  // By cause (src/shared/failures): crashes and API outages retry without limit, the agent's own
  // failures end the turn.
  retry: retryPolicy({ maximumInterval: '1 minute' }),
});

interface TurnOutcome {
  ok: boolean;
  cancelled: boolean;
  costUsd: number;
  turns: number;
  error?: string;
  errorType?: FailureType;
  sessionCost?: number;
  sessionUsage?: { inputTokens: number; outputTokens: number; cacheRead: number; cacheCreation: number };
}

export async function teamAgentWorkflow(input: TeamAgentInput): Promise<TeamAgentResult> {
  const { agent, settings } = input;
  const startedAt = new Date().toISOString();
  const dir = agentDir(input.workspace, agent.id);
  const sessionId = input.backend === 'cli' ? (input.sessionId ?? uuid4()) : undefined;
  const status: TeamAgentStatus = {
    agentId: agent.id,
    name: agent.name,
    role: agent.role,
    state: 'starting',
    round: 0,
    turns: 0,
    costUsd: 0,
    tasks: { completed: 0, total: 0 },
    sessionId,
    dir,
  };
  let stopReason: string | undefined;
  let reportedDone = false;
  let finished = false;
  let tasks: TeamTask[] = [];
  let turnScope: CancellationScope | undefined;
  /** The agent's `agent` chain: what its next `taskDone` must prove. */
  let cap: CapabilityState | undefined = input.capability
    ? { anchor: input.capability.anchor, used: 0 }
    : undefined;

  const team = getExternalWorkflowHandle(input.runId);
  /** The limits the gateway admits this agent's requests under; the team sends new ones on a raise. */
  let limits: MeterLimitsMessage = input.meter?.limits ?? {};
  let limitsVersion = 0;
  setHandler(agentBudgetLimitsSignal, (l) => {
    limits = l;
    limitsVersion += 1;
  });
  const reports: Promise<void>[] = [];
  const report = (p: Omit<AgentProgress, 'agentId'>) => {
    reports.push(
      team.signal(agentProgressSignal, { agentId: agent.id, ...p }).catch((err: unknown) => {
        log.warn('progress not delivered to the team', { agentId: agent.id, error: describe(err) });
      }),
    );
  };
  const allTasksDone = () => status.tasks.total > 0 && status.tasks.completed === status.tasks.total;
  const complete = () => reportedDone || allTasksDone();

  // Messages from teammates and users: the running turn's activity polls them into the live session;
  // what arrives between turns goes into the next turn's prompt.
  const inbox: TeamMessage[] = [];
  let deliveredSeq = 0;
  setHandler(deliverMessageSignal, (m) => {
    inbox.push({ seq: inbox.length + 1, from: m.from, text: m.text, at: new Date().toISOString() });
  });
  setHandler(agentInboxQuery, (after) => inbox.filter((m) => m.seq > (after ?? 0)));
  setHandler(reportStatusSignal, ({ text }) => {
    status.note = String(text).slice(0, 500);
    report({ note: status.note });
  });
  setHandler(teamAgentStatusQuery, () => ({ ...status, ...(cap ? { proofsUsed: cap.used } : {}) }));
  setHandler(stopAgentSignal, (req) => {
    stopReason = req?.reason || 'stopped';
    turnScope?.cancel();
  });
  setHandler(
    taskDoneUpdate,
    async (req) => {
      if (cap) {
        const check = checkProof(cap, req.proof);
        if (!check.ok) {
          const reason = `spoof attempt: the request does not prove it comes from ${agent.id} (${check.reason})`;
          reports.push(
            team
              .signal(spoofReportSignal, {
                agentId: agent.id,
                source: 'taskDone',
                request: { task: req.task, all: req.all },
                reason: check.reason,
              })
              .catch((err: unknown) => {
                log.warn('spoof report not delivered to the team', {
                  agentId: agent.id,
                  error: describe(err),
                });
              }),
          );
          throw ApplicationFailure.nonRetryable(reason, 'SpoofAttempt');
        }
        cap = check.next;
      }
      const r = await localFiles.markTeamTasks({ dir, task: req.task, all: req.all });
      if (r.unknown !== undefined) {
        const known = r.tasks.map((t) => `${t.id} (${t.status})`).join(', ') || 'none';
        throw ApplicationFailure.nonRetryable(
          `${agent.id} has no task "${r.unknown}"; its tasks: ${known}`,
          'UnknownTask',
        );
      }
      tasks = r.tasks;
      status.tasks = r.counts;
      if (req.all) reportedDone = true;
      report({ tasks: r.counts });
      return { agentId: agent.id, tasks: r.tasks, remaining: r.counts.total - r.counts.completed };
    },
    {
      validator: (req) => {
        const r = TaskDoneRequestSchema.safeParse(req);
        if (!r.success)
          throw new Error(`invalid request: ${r.error.issues.map((i) => i.message).join('; ')}`);
        if (finished || status.state === 'starting') throw new Error(`agent ${agent.id} is ${status.state}`);
      },
    },
  );

  const persona = renderPersona({
    runId: input.runId,
    goal: input.goal,
    workspace: input.workspace,
    agent,
    title: input.title,
    persona: input.persona,
    canRequest: input.canRequest,
    sessionId,
    backend: input.backend,
    startedAt,
  });
  const prep = await localFiles.prepareTeamAgent({
    runId: input.runId,
    workspace: input.workspace,
    outputsDir: input.outputsDir,
    agent,
    workflowId: teamAgentWorkflowId(input.runId, agent.id),
    backend: input.backend,
    persona,
    instructions: input.instructions,
    sessionId,
    startedAt,
  });
  status.tasks = prep.tasks;
  status.state = 'running';
  const env: Record<string, string> = {
    ...prep.env,
    ORCHESTRATOR_RUN_ID: input.runId,
    ORCHESTRATOR_AGENT_ID: agent.id,
    ORCHESTRATOR_WORKSPACE: input.workspace,
  };

  const script = proxyActivities<Pick<Activities, 'scriptTurn'>>({
    startToCloseTimeout: `${settings.scriptTimeoutS + 60} seconds`,
    heartbeatTimeout: '5 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // A script's side effects may not be repeatable: only a crash (heartbeat timeout) retries it, and
    // then without limit (src/shared/failures); its own failures are not retried.
    retry: retryPolicy(),
  });

  let session = { cost: 0, usage: undefined as TurnOutcome['sessionUsage'] };
  let turnRunning = false;
  let error: string | undefined;
  let errorType: FailureType | undefined;

  /**
   * A budget refused the agent's next model request: the team pauses and names the limit, and the agent
   * waits, its session intact, until the team sends new limits (true), or its turn is cancelled.
   */
  async function budgetPause(err: unknown): Promise<boolean> {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (!input.meter || !(cause instanceof ApplicationFailure) || cause.type !== BUDGET_EXCEEDED)
      return false;
    const refusal = failureSummary(err)?.budgetRefusal;
    const seen = limitsVersion;
    await team.signal(agentBudgetPausedSignal, {
      workflowId: workflowInfo().workflowId,
      phase: agent.role,
      agent: agent.id,
      reason: cause.message,
      level: refusal?.level === 'run' || refusal?.level === 'phase' ? refusal.level : 'agent',
      unit: refusal?.unit === 'tokens' ? 'tokens' : 'usd',
    });
    await condition(() => limitsVersion > seen);
    return true;
  }

  async function runTurn(round: number): Promise<TurnOutcome> {
    /** Spent by attempts of this round that a budget stopped. */
    let refusedCost = 0;
    try {
      if (input.backend === 'script') {
        const r = await script.scriptTurn({
          runId: input.runId,
          agentId: agent.id,
          workspace: input.workspace,
          outputsDir: input.outputsDir,
          command: ['sh', '-c', input.instructions],
          env,
          timeoutS: settings.scriptTimeoutS,
          ...(input.capability ? { capabilityFile: input.capability.file } : {}),
        });
        return {
          ok: r.ok,
          cancelled: false,
          costUsd: 0,
          turns: 1,
          error: r.ok ? undefined : `script exited with code ${r.exitCode}: ${r.summary.slice(-300)}`,
          ...(r.ok ? {} : { errorType: 'AgentExited' as const }),
        };
      }
      // Messages that arrived while no turn ran open the next prompt.
      const unread = inbox.filter((m) => m.seq > deliveredSeq);
      const base = round === 1 ? firstPrompt(input, dir) : continuePrompt(tasks);
      const prompt = unread.length ? [...unread.map(messagePrompt), '', base].join('\n') : base;
      let afterSeq = unread.at(-1)?.seq ?? deliveredSeq;
      // After a budget refusal the same round runs again in the same session once limits are raised.
      let resumed = false;
      for (;;) {
        try {
          const r = await model.claudeTurn({
            runId: input.runId,
            agentId: agent.id,
            outputsDir: input.outputsDir,
            sessionId: sessionId!,
            resume: round > 1 || resumed,
            prompt: resumed ? BUDGET_RESUME_NOTE + prompt : prompt,
            team: { runId: input.runId, agentId: agent.id, afterSeq },
            cwd: input.workspace,
            model: input.model ?? settings.model,
            maxTurns: input.maxTurns ?? settings.maxTurns,
            maxBudgetUsd: settings.maxBudgetUsd,
            appendSystemPrompt: persona,
            allowedTools: settings.allowedTools,
            disallowedTools: settings.disallowedTools,
            permissionMode: settings.permissionMode,
            agents: input.subagents,
            extraEnv: env,
            ...(input.capability ? { capabilityFile: input.capability.file } : {}),
            previousSessionCostUsd: session.cost,
            previousSessionUsage: session.usage,
            // One meter per agent (the file the team reads), its role as the phase.
            ...(input.meter ? { meter: { id: agent.id, phase: agent.role, agent: agent.id, limits } } : {}),
          });
          session = { cost: r.totalCostUsd, usage: r.sessionUsage };
          deliveredSeq = Math.max(deliveredSeq, r.deliveredSeq ?? afterSeq);
          return {
            ok: r.ok,
            cancelled: false,
            costUsd: refusedCost + r.costUsd,
            turns: r.numTurns,
            error: r.ok ? undefined : `${r.subtype}: ${r.resultText.slice(0, 300)}`,
            ...(r.ok ? {} : { errorType: cliResultType(r.subtype) }),
          };
        } catch (err) {
          if (!input.meter || isCancellation(err)) throw err;
          const summary = failureSummary(err);
          if (!(await budgetPause(err))) throw err;
          refusedCost += summary?.costUsd ?? 0;
          if (summary?.totalCostUsd !== undefined)
            session = { cost: summary.totalCostUsd, usage: summary.sessionUsage ?? session.usage };
          // Messages the refused attempt delivered mid-turn are in the session: not sent again.
          afterSeq = Math.max(afterSeq, summary?.deliveredSeq ?? afterSeq);
          resumed = true;
        }
      }
    } catch (err) {
      // A failed or cancelled turn still cost money: its summary rides in the failure's details.
      const summary = failureSummary(err);
      return {
        ok: false,
        cancelled: isCancellation(err),
        costUsd: refusedCost + (summary?.costUsd ?? 0),
        turns: 0,
        error: describe(err),
        errorType: failureType(err),
      };
    } finally {
      turnRunning = false;
    }
  }

  try {
    for (let round = 1; round <= settings.maxRounds && !complete() && stopReason === undefined; round++) {
      status.round = round;
      turnScope = new CancellationScope();
      turnRunning = true;
      const turn = turnScope.run(() => runTurn(round));
      await condition(() => !turnRunning || complete() || stopReason !== undefined);
      // Done while the process still runs (it marked its last task): let it end its turn, then end it.
      if (turnRunning && stopReason === undefined) {
        await condition(
          () => !turnRunning || stopReason !== undefined,
          `${settings.completionGraceS} seconds`,
        );
      }
      if (turnRunning) turnScope.cancel();
      const outcome = await turn;
      turnScope = undefined;
      status.costUsd = round6(status.costUsd + outcome.costUsd);
      status.turns += outcome.turns;
      if (stopReason !== undefined) break;
      const read = await localFiles.readTeamTasks({ dir });
      tasks = read.tasks;
      status.tasks = read.counts;
      if (input.backend === 'script' && outcome.ok) reportedDone = true;
      report({ costUsd: status.costUsd, turns: status.turns, tasks: status.tasks });
      if (!outcome.ok && !outcome.cancelled) {
        error = outcome.error;
        errorType = outcome.errorType;
        break;
      }
    }
  } finally {
    finished = true;
  }

  const state: TeamAgentResult['state'] =
    stopReason !== undefined ? 'stopped' : complete() ? 'completed' : 'failed';
  if (state === 'failed' && !error) {
    error = `tasks not completed after ${settings.maxRounds} round(s): ${status.tasks.completed}/${status.tasks.total} done`;
    errorType = 'TasksNotCompleted';
  }
  status.state = state;
  const completedAt = new Date().toISOString();
  const { archivedTo } = await CancellationScope.nonCancellable(() =>
    files.archiveTeamAgent({
      dir,
      outcome: state,
      session: { completedAt, costUsd: status.costUsd, turns: status.turns, error, stopReason },
    }),
  );
  await Promise.all(reports);
  await condition(allHandlersFinished);
  const result: TeamAgentResult = {
    agentId: agent.id,
    state,
    costUsd: status.costUsd,
    turns: status.turns,
    tasks: status.tasks,
    archivedTo,
    sessionId,
    error,
    ...(state === 'failed' ? { errorType: errorType ?? 'AgentFailed' } : {}),
    startedAt,
    completedAt,
  };
  // The team's latest execution learns of the end by signal: after a continue-as-new it does not own
  // this workflow any more and no result reaches it.
  if (patched(LONG_TEAMS_PATCH)) {
    await team.signal(agentEndedSignal, result).catch((err: unknown) => {
      log.warn('end not reported to the team', { agentId: agent.id, error: describe(err) });
    });
  }
  // A failed agent is a failed workflow (red in the Web UI, its classified failure as the cause); its
  // result rides in the failure's details, so the team still learns its cost, tasks and archive.
  if (state === 'failed' && patched(HONEST_OUTCOMES_PATCH)) throw agentFailure(result);
  return result;
}

/** The failure a failed agent's workflow ends with: its type is the agent's classified failure. */
export function agentFailure(result: TeamAgentResult): ApplicationFailure {
  return ApplicationFailure.create({
    type: result.errorType ?? 'AgentFailed',
    message: `${result.agentId} failed: ${(result.error ?? 'unknown error').slice(0, 500)}`,
    nonRetryable: true,
    details: [result],
  });
}

/** The result a failed agent's workflow carried in its failure (see `agentFailure`), if it is one. */
export function carriedAgentResult(err: unknown): TeamAgentResult | undefined {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const first: unknown = Array.isArray(cause.details) ? cause.details[0] : undefined;
  if (!first || typeof first !== 'object') return undefined;
  const r = first as Partial<TeamAgentResult>;
  return typeof r.agentId === 'string' && r.state === 'failed' && typeof r.completedAt === 'string'
    ? (r as TeamAgentResult)
    : undefined;
}

/** The failure type of a `claude` result that ended a turn unsuccessfully (activities/cli/classify). */
function cliResultType(subtype: string): FailureType {
  if (subtype === 'error_max_turns') return 'MaxTurnsExceeded';
  if (subtype === 'error_max_budget_usd') return 'BudgetExhausted';
  return 'CliError';
}

/** The registered failure type of an activity's (or child's) failure; `AgentFailed` for anything else. */
function failureType(err: unknown): FailureType {
  const cause = err instanceof ActivityFailure || err instanceof ChildWorkflowFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? cause.type : undefined;
  return isFailureType(type) ? type : 'AgentFailed';
}

function firstPrompt(input: TeamAgentInput, dir: string): string {
  return [
    input.instructions.trim(),
    '',
    `Your tasks are listed in ${dir}/tasks.md. Run \`orchestrator team task done <id>\` as you finish each one.`,
  ].join('\n');
}

function continuePrompt(tasks: readonly TeamTask[]): string {
  const open = tasks.filter((t) => t.status !== 'completed');
  const list = open.length
    ? open.map((t) => `- ${t.id} (${t.status}): ${t.text}`).join('\n')
    : '- (none listed)';
  return [
    'Some of your tasks are not completed yet:',
    list,
    '',
    'Continue with them. Run `orchestrator team task done <id>` for each task you finish, or',
    '`orchestrator team task done --all` when all your work is done.',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------

/** The turn summary a failed model turn carries in its details (activities/cli). */
interface FailedTurnSummary {
  costUsd?: number;
  totalCostUsd?: number;
  sessionUsage?: TurnOutcome['sessionUsage'];
  budgetRefusal?: { level?: string; unit?: string };
  deliveredSeq?: number;
}

function failureSummary(err: unknown): FailedTurnSummary | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const details = (cause as { details?: unknown[] } | undefined)?.details;
  const first = Array.isArray(details) ? details[0] : undefined;
  return first && typeof first === 'object' ? first : undefined;
}

function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure || err instanceof ChildWorkflowFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  if (cause instanceof Error) return cause.message;
  return String(err);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
