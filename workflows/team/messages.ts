/**
 * Messages to agents (signal `messageAgent`, update `sendMessage`): checked (src/shared/team
 * `checkMessage`), the sender proven (./auth), then handed to the agent's workflow once it has started,
 * every step on the audit trail.
 */
import { ApplicationFailure, condition, log } from '@temporalio/workflow';
import { OPERATOR } from '../../src/shared/identity';
import { zodIssueText } from '../../src/shared/zod-issues';
import {
  checkMessage,
  deliverMessageSignal,
  isActive,
  messageDigest,
  MessageVouchRequestSchema,
  VOUCHED_MESSAGES_KEPT,
  type MessageRequest,
  type MessageResult,
} from '../../src/shared/team';
import { authenticateSender } from './auth';
import { describe } from './failures';
import type { TeamRun } from './run';

/** Hands an accepted message to its agent's workflow (once that has started), on the audit trail. */
export async function deliver(
  run: TeamRun,
  agentId: string,
  from: string,
  text: string,
): Promise<MessageResult> {
  const rec = run.byId(agentId)!;
  if (run.queued.includes(rec)) {
    // It starts in the team's next execution; waiting here would keep this one from continuing.
    const reason = `agent ${rec.id} (${rec.name}) has not started yet (the team is continuing as new); send the message again in a moment`;
    run.record('run', from, { event: 'message_refused', to: rec.id, reason });
    throw ApplicationFailure.nonRetryable(reason, 'MessageRefused');
  }
  run.record('run', from, { event: 'message', to: rec.id, from, text: text.slice(0, 2000) });
  await condition(() => run.agentHandle(rec) !== undefined || !isActive(rec.state));
  try {
    const handle = run.agentHandle(rec);
    if (!handle) throw new Error('never started');
    // Kept before it is sent: the agent asks whether its team sent it (query `messageVouched`).
    vouchFor(run, rec.id, from, text);
    await handle.signal(deliverMessageSignal, { from, text });
  } catch (err) {
    // It ended between the check and the delivery (its result is not processed yet).
    const state = isActive(rec.state) ? 'ended' : rec.state;
    run.record('run', from, { event: 'message_refused', to: rec.id, reason: describe(err) });
    throw ApplicationFailure.nonRetryable(
      `agent ${rec.id} (${rec.name}) has ended: ${state}`,
      'MessageRefused',
    );
  }
  return { to: rec.id, name: rec.name, state: rec.state };
}

/** Signal `messageAgent`: a signal has no caller to tell, so every refusal goes on the audit trail. */
export async function onMessageSignal(run: TeamRun, req: MessageRequest): Promise<void> {
  const check = checkMessage(run.view(), req);
  if (!check.ok) {
    const from = typeof req?.from === 'string' ? req.from.slice(0, 100) : OPERATOR;
    run.record('run', from, {
      event: 'message_refused',
      to: String(req?.to).slice(0, 100),
      reason: check.reason,
    });
    log.warn('message refused', { runId: run.runId, reason: check.reason });
    return;
  }
  if (!authenticateSender(run, check.request, 'signal').ok) return;
  // A late refusal is on the audit trail (deliver records it).
  await deliver(run, check.agentId, check.request.from, check.request.text).catch(() => undefined);
}

/** Update `sendMessage`: a refusal is the caller's error. */
export async function onMessageUpdate(run: TeamRun, req: MessageRequest): Promise<MessageResult> {
  const check = checkMessage(run.view(), req);
  if (!check.ok) throw ApplicationFailure.nonRetryable(check.reason, 'MessageRefused');
  const auth = authenticateSender(run, check.request, 'update');
  if (!auth.ok) throw ApplicationFailure.nonRetryable(auth.reason, 'SpoofAttempt');
  return deliver(run, check.agentId, check.request.from, check.request.text);
}

/** The `sendMessage` validator: a malformed or misaddressed message is rejected before history. */
export function validateMessage(run: TeamRun, req: unknown): void {
  const check = checkMessage(run.view(), req);
  if (!check.ok) throw new Error(check.reason);
}

/** Keeps the digest of a message to `to` (the newest {@link VOUCHED_MESSAGES_KEPT}). */
export function vouchFor(run: Pick<TeamRun, 'sentMessages'>, to: string, from: string, text: string): void {
  const kept = run.sentMessages.get(to) ?? [];
  kept.push(messageDigest(to, from, text));
  if (kept.length > VOUCHED_MESSAGES_KEPT) kept.splice(0, kept.length - VOUCHED_MESSAGES_KEPT);
  run.sentMessages.set(to, kept);
}

/** Whether the team delivered the message `raw` names; throws (failing only the query) on a bad request. */
export function messageVouched(run: Pick<TeamRun, 'sentMessages'>, raw: unknown): boolean {
  const req = MessageVouchRequestSchema.safeParse(raw);
  if (!req.success) throw new Error(`invalid messageVouched request: ${zodIssueText(req.error, 'request')}`);
  return run.sentMessages.get(req.data.to)?.includes(req.data.digest) ?? false;
}
