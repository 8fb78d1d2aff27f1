/**
 * A team agent's handlers: new limits from its team, messages into its inbox, its status, a stop, and
 * `taskDone` (proven by the agent's own capability chain; a spoof is reported to the team).
 */
import { ApplicationFailure, log, patched, setHandler } from '@temporalio/workflow';
import { zodIssueText } from '../../src/shared/zod-issues';
import { checkProof } from '../../src/shared/identity';
import { agentBudgetLimitsSignal, MeterLimitsMessageSchema } from '../../src/shared/messages';
import {
  agentInboxQuery,
  DeliveredMessageSchema,
  deliverMessageSignal,
  messageDigest,
  reportStatusSignal,
  ReportStatusSchema,
  spoofReportSignal,
  StopAgentRequestSchema,
  stopAgentSignal,
  taskDoneUpdate,
  TaskDoneRequestSchema,
  teamAgentStatusQuery,
  teamHostMovedSignal,
  TeamHostSchema,
  type TaskDoneRequest,
  type DeliveredMessage,
  type TaskDoneResult,
} from '../../src/shared/team';
import { VOUCHED_MESSAGES_PATCH } from './patches';
import { vouching } from './proxies';
import type { TeamAgentRun } from './agent-run';
import { describe } from './failures';
import { signalInput } from '../signal-input';

/** Registers every handler of the agent, in the order a history replays. */
export function setAgentHandlers(a: TeamAgentRun): void {
  const { agent, status } = a;
  const ctx = { agentId: agent.id };
  setHandler(agentBudgetLimitsSignal, (raw) => {
    const l = signalInput('budgetLimits', MeterLimitsMessageSchema, raw, ctx);
    if (!l) return;
    a.limits = l;
    a.limitsVersion += 1;
  });
  setHandler(deliverMessageSignal, (raw) => {
    const m = signalInput('deliverMessage', DeliveredMessageSchema, raw, ctx);
    if (!m) return;
    a.vouched ??= patched(VOUCHED_MESSAGES_PATCH);
    if (!a.vouched) return void takeIntoInbox(a, m);
    // Anything that reaches the server can send this, naming any sender: in only if the team sent it.
    a.deliveries = a.deliveries.then(() => takeIfVouched(a, m));
    return a.deliveries;
  });
  setHandler(agentInboxQuery, (after) => a.inbox.filter((m) => m.seq > (after ?? 0)));
  setHandler(reportStatusSignal, (raw) => {
    const r = signalInput('reportStatus', ReportStatusSchema, raw, ctx);
    if (!r) return;
    status.note = r.text.slice(0, 500);
    a.report({ note: status.note });
  });
  setHandler(teamAgentStatusQuery, () => ({ ...status, ...(a.cap ? { proofsUsed: a.cap.used } : {}) }));
  setHandler(stopAgentSignal, (raw) => {
    const req = signalInput('stopAgent', StopAgentRequestSchema, raw, ctx);
    if (req === undefined && raw != null) return;
    a.stopReason = req?.reason || 'stopped';
    a.turnScope?.cancel();
  });
  setHandler(taskDoneUpdate, (req) => taskDone(a, req), {
    validator: (req) => {
      const r = TaskDoneRequestSchema.safeParse(req);
      if (!r.success) throw new Error(`invalid request: ${zodIssueText(r.error, 'request')}`);
      if (a.finished || status.state === 'starting') throw new Error(`agent ${agent.id} is ${status.state}`);
    },
  });
  setHandler(teamHostMovedSignal, (raw) => {
    // Only a team that moves sends it (patch `team-host-move`): the agent's steps go there from now on.
    if (!a.input.hostMoves) return;
    const to = signalInput('teamHostMoved', TeamHostSchema, raw, ctx);
    if (to) a.host = to;
  });
}

/** Update `taskDone`: marks tasks in the agent's tasks.md, once the request proves it is the agent's. */
async function taskDone(a: TeamAgentRun, req: TaskDoneRequest): Promise<TaskDoneResult> {
  const { agent, status } = a;
  if (a.cap) {
    const check = checkProof(a.cap, req.proof);
    if (!check.ok) {
      const reason = `spoof attempt: the request does not prove it comes from ${agent.id} (${check.reason})`;
      a.reports.push(
        a.team
          .signal(spoofReportSignal, {
            agentId: agent.id,
            source: 'taskDone',
            request: { task: req.task, all: req.all },
            reason: check.reason,
          })
          .catch((err: unknown) => {
            log.warn('spoof report not delivered to the team', { agentId: agent.id, error: describe(err) });
          }),
      );
      throw ApplicationFailure.nonRetryable(reason, 'SpoofAttempt');
    }
    a.cap = check.next;
  }
  const r = await a.onHost(() => a.files.markTeamTasks({ dir: a.dir, task: req.task, all: req.all }));
  if (r.unknown !== undefined) {
    const known = r.tasks.map((t) => `${t.id} (${t.status})`).join(', ') || 'none';
    throw ApplicationFailure.nonRetryable(
      `${agent.id} has no task "${r.unknown}"; its tasks: ${known}`,
      'UnknownTask',
    );
  }
  a.tasks = r.tasks;
  status.tasks = r.counts;
  if (req.all) a.reportedDone = true;
  a.report({ tasks: r.counts });
  return { agentId: agent.id, tasks: r.tasks, remaining: r.counts.total - r.counts.completed };
}

function takeIntoInbox(a: TeamAgentRun, m: DeliveredMessage): void {
  a.inbox.push({ seq: a.inbox.length + 1, from: m.from, text: m.text, at: new Date().toISOString() });
}

/** Takes `m` into the inbox when the team vouches for it; otherwise reports the spoof to the team. */
async function takeIfVouched(a: TeamAgentRun, m: DeliveredMessage): Promise<void> {
  const { agent } = a;
  let sent: boolean;
  try {
    sent = await vouching.messageVouched({
      teamId: a.input.runId,
      to: agent.id,
      digest: messageDigest(agent.id, m.from, m.text),
    });
  } catch (err) {
    log.warn('message dropped: its team could not say whether it sent it', {
      agentId: agent.id,
      from: m.from,
      error: describe(err),
    });
    return;
  }
  if (sent) return takeIntoInbox(a, m);
  log.warn('message refused: its team did not send it', { agentId: agent.id, from: m.from });
  a.reports.push(
    a.team
      .signal(spoofReportSignal, {
        agentId: agent.id,
        source: 'deliverMessage',
        request: { from: m.from, to: agent.id, text: m.text.slice(0, 200) },
        reason: `a message naming ${m.from} as its sender that the team never sent`,
      })
      .catch((err: unknown) => {
        log.warn('spoof report not delivered to the team', { agentId: agent.id, error: describe(err) });
      }),
  );
}
