/**
 * The team's signal, query and update handlers (all defined in src/shared/team and
 * src/shared/messages), registered in one fixed order: a signal buffered before its handler exists is
 * delivered when the handler is set, so the order is part of what a history replays.
 */
import { ApplicationFailure, condition, log, setHandler } from '@temporalio/workflow';
import { zodIssueText } from '../../src/shared/zod-issues';
import { OPERATOR } from '../../src/shared/identity';
import {
  AgentBudgetPausedSchema,
  agentBudgetPausedSignal,
  auditHeadQuery,
  auditQuery,
  budgetQuery,
  raiseBudgetUpdate,
} from '../../src/shared/messages';
import {
  agentEndedSignal,
  AgentProgressSchema,
  agentProgressSignal,
  checkSpawnRequest,
  isActive,
  messageAgentSignal,
  messageVouchedQuery,
  RefusalReportSchema,
  requestAgentUpdate,
  sendMessageUpdate,
  spawnAgentSignal,
  spawnRefusedSignal,
  spoofReportSignal,
  SpoofReportSchema,
  stopTeamSignal,
  StopTeamRequestSchema,
  teamHostLostSignal,
  TeamHostLostSchema,
  TeamAgentOutcomeSchema,
  teamStatusQuery,
  type SpawnResult,
  type TeamStatus,
} from '../../src/shared/team';
import { handleMeterLimits } from '../meter-limits';
import { claimEnd } from './ends';
import { signalInput } from '../signal-input';
import { authenticate } from './auth';
import { budgetPaused, budgetStatus, chargeAgent, checkRaise, raiseBudget } from './budget';
import { messageVouched, onMessageSignal, onMessageUpdate, validateMessage } from './messages';
import { admit, drainBusy, refuse, spawnResult } from './requests';
import { onAgentHostLost, requestTeamCheckpoint } from './host';
import { finishAgent } from './roster';
import type { TeamRun } from './run';

/** Registers every handler of the team. */
export function setTeamHandlers(run: TeamRun): void {
  const { runId, policy } = run;
  setHandler(spawnAgentSignal, (req) => {
    const busy = drainBusy(run, req);
    if (busy !== undefined) return refuse(run, 'signal', req, busy);
    const auth = authenticate(run, req, 'signal');
    if (!auth.ok) return;
    const out = admit(run, req, 'signal');
    // A signal cannot be refused to its sender, so the refusal is recorded where status shows it.
    if (typeof out === 'string') refuse(run, 'signal', req, out);
    else if (out.duplicate) log.info('duplicate spawn request ignored', { runId, agentId: out.rec.id });
  });
  setHandler(
    requestAgentUpdate,
    async (req): Promise<SpawnResult> => {
      // Before the proof is checked, so that the same request can be sent again.
      const busy = drainBusy(run, req);
      if (busy !== undefined) throw ApplicationFailure.nonRetryable(busy, 'TeamBusy');
      const auth = authenticate(run, req, 'update');
      if (!auth.ok) throw ApplicationFailure.nonRetryable(auth.reason, 'SpoofAttempt');
      const out = admit(run, req, 'update');
      if (typeof out === 'string') {
        // Refused here, not in the validator, so that the refusal is on record whoever sent it.
        if (run.capabilities) refuse(run, 'update', req, out);
        throw ApplicationFailure.nonRetryable(out, 'SpawnRefused');
      }
      const { rec, duplicate } = out;
      // A queued agent starts in the next execution: the answer says `starting`, and waits for nothing
      // that would keep this one from continuing.
      if (!run.queued.includes(rec)) await condition(() => rec.state !== 'starting');
      // A resent request gets the original's answer: it is the same request, not a second one.
      return spawnResult(rec, duplicate && !(run.proofReplays && auth.replay));
    },
    {
      validator: (req) => {
        // With capabilities, every well-formed request reaches the handler, which records its outcome.
        const check = checkSpawnRequest(policy, run.view(), req);
        if (!check.ok && (!run.capabilities || check.reason.startsWith('invalid request')))
          throw new Error(check.reason);
      },
    },
  );
  setHandler(spawnRefusedSignal, (report) => {
    // Clients of teams without capabilities report the validator's refusals; now the handler records them.
    if (run.capabilities) return;
    const r = RefusalReportSchema.safeParse(report);
    if (r.success) refuse(run, 'update', r.data.request, r.data.reason);
  });
  setHandler(spoofReportSignal, (report) => {
    // An agent workflow refused a request made in its agent's name (e.g. `team task done`).
    const r = SpoofReportSchema.safeParse(report);
    if (!r.success) return;
    const rec = run.byId(r.data.agentId);
    if (!rec) return;
    run.record('spoof_attempt', 'unknown', {
      claimed: rec.id,
      source: r.data.source,
      request: r.data.request,
      reason: r.data.reason,
    });
  });
  setHandler(messageAgentSignal, (req) => onMessageSignal(run, req));
  setHandler(sendMessageUpdate, (req) => onMessageUpdate(run, req), {
    validator: (req) => validateMessage(run, req),
  });
  setHandler(stopTeamSignal, (raw) => {
    const req = StopTeamRequestSchema.safeParse(raw);
    if (!req.success) {
      // A signal cannot be refused to its sender: the refusal goes where status and the audit show it.
      const reason = `stopTeam refused: ${zodIssueText(req.error, 'payload')}`;
      run.record('run', OPERATOR, {
        event: 'team_stop_refused',
        reason,
        payload: JSON.stringify(raw ?? null).slice(0, 200),
      });
      log.warn('stopTeam signal refused', { runId, reason });
      return;
    }
    if (run.state !== 'running') return;
    run.stopReason = req.data?.reason || 'stopped on request';
    run.state = 'stopping';
    run.record('run', OPERATOR, { event: 'team_stop_requested', reason: run.stopReason });
  });
  const ctx = { runId };
  setHandler(agentProgressSignal, (raw) => {
    const p = signalInput('agentProgress', AgentProgressSchema, raw, ctx);
    const rec = p ? run.byId(p.agentId) : undefined;
    if (!p || !rec) return;
    // Our agents report spend, rounds, tasks and notes only. Anything that reaches the server can send
    // this naming any agent: since patch `team-verified-ends`, a state or a session in it is not believed
    // (a forged `completed` would end a running teammate in the books; `starting` would hold the drain).
    if (!run.verifiedEnds) {
      if (p.state && isActive(rec.state)) rec.state = p.state;
      if (p.sessionId) rec.sessionId = p.sessionId;
    }
    if (p.startedAt) rec.startedAt ??= p.startedAt;
    if (p.costUsd !== undefined) rec.costUsd = p.costUsd;
    if (p.turns !== undefined) rec.turns = p.turns;
    if (p.tasks) rec.tasks = p.tasks;
    if (p.note !== undefined) rec.note = p.note;
    // A round ended: its spend goes into the ledger now, so `budget status` follows the team.
    if (p.costUsd !== undefined) void chargeAgent(run, rec);
    // A round ended: its work is checkpointed, so a move restores it (./host).
    if (p.tasks) requestTeamCheckpoint(run, `${rec.id} round`);
  });
  setHandler(agentEndedSignal, async (raw) => {
    // Sent by the agent's own workflow as it ends; only an agent of this team, once.
    const r = signalInput('agentEnded', TeamAgentOutcomeSchema, raw, ctx);
    const rec = r ? run.byId(r.agentId) : undefined;
    if (!r || !rec || run.ended.has(rec.id)) return;
    // Anything that reaches the server can send this, naming any agent: checked against the server.
    if (run.verifiedEnds) claimEnd(run, rec, r);
    else await finishAgent(run, rec, { result: r });
  });
  setHandler(teamStatusQuery, (): TeamStatus => run.status());
  setHandler(auditQuery, (req) => run.trail.page(req).entries);
  setHandler(auditHeadQuery, () => run.trail.head());
  setHandler(raiseBudgetUpdate, (req) => raiseBudget(run, checkRaise(run, req)), {
    validator: (req) => void checkRaise(run, req),
  });
  setHandler(agentBudgetPausedSignal, async (raw) => {
    const p = signalInput('agentBudgetPaused', AgentBudgetPausedSchema, raw, ctx);
    if (p) await budgetPaused(run, p);
  });
  setHandler(budgetQuery, () => budgetStatus(run));
  handleMeterLimits(() => run.ledger);
  setHandler(messageVouchedQuery, (raw) => messageVouched(run, raw));
  setHandler(teamHostLostSignal, (raw) => {
    const p = signalInput('teamHostLost', TeamHostLostSchema, raw, ctx);
    if (p) onAgentHostLost(run, p);
  });
}
