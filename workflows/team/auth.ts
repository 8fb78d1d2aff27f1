/**
 * Who sent a request: an agent's request (a teammate, a message) must prove it comes from the agent it
 * names, with the next element of that agent's `team` chain (src/shared/identity). A failure is audited
 * as a spoof attempt, naming the agent whose proof it was when it belongs to another agent of the team.
 */
import { log } from '@temporalio/workflow';
import { checkProof, OPERATOR, PROOF_REPLAY_WINDOW } from '../../src/shared/identity';
import { sha256Hex } from '../../src/shared/sha256';
import { isActive } from '../../src/shared/team';
import { keepRecentRefusals } from './requests';
import type { TeamRun } from './run';
import type { AgentRecord } from './types';

/** Whether a request proved its requester: `replay` marks a resent request that was accepted before. */
export type Authentication = { ok: true; replay?: boolean } | { ok: false; reason: string };

/** The agent whose chain a proof belongs to (its anchor is the proof's hash), if any. */
export function proofOwner(records: readonly AgentRecord[], proof: unknown): AgentRecord | undefined {
  const p = typeof proof === 'string' ? proof : undefined;
  const digest = p && /^[0-9a-f]{64}$/.test(p) ? sha256Hex(p) : undefined;
  return digest ? records.find((a) => a.cap && a.cap.anchor === digest) : undefined;
}

/** What a spoof attempt's refusal says. */
export function spoofMessage(claimed: string, reason: string, owner?: string): string {
  return `spoof attempt: the request does not prove it comes from ${claimed.slice(0, 100)} (${reason})${
    owner ? `; the proof is ${owner}'s` : ''
  }`;
}

/**
 * Checks that a request comes from the agent it names: its proof must be the next element of that
 * agent's `team` chain. Teams started before capabilities take every request.
 */
export function authenticate(run: TeamRun, req: unknown, source: 'signal' | 'update'): Authentication {
  if (!run.capabilities) return { ok: true };
  const r = (req ?? {}) as { requestedBy?: unknown; proof?: unknown; name?: unknown; role?: unknown };
  const claimed = typeof r.requestedBy === 'string' ? r.requestedBy : JSON.stringify(r.requestedBy ?? null);
  const rec = typeof r.requestedBy === 'string' ? run.byId(r.requestedBy) : undefined;
  let reason: string;
  if (!rec?.cap) {
    reason = `"${claimed.slice(0, 100)}" is not an agent of this team with a capability`;
  } else {
    const check = checkProof(rec.cap, r.proof, run.proofReplays ? PROOF_REPLAY_WINDOW : 0);
    if (check.ok) {
      rec.cap = check.next;
      if (!isActive(rec.state)) return { ok: false, reason: `requester ${rec.id} has ${rec.state}` };
      return { ok: true };
    }
    // A resent request (a proof its sender used, the same teammate) is one accepted before: harmless.
    // The server resends an update completed beside a continue-as-new to the next execution; by then
    // its sender may have moved on (temporalio/temporal#6375).
    const same = run.records.find((a) => a.name === r.name);
    if (check.replayed && same && same.role === r.role && same.requestedBy === rec.id) {
      return { ok: true, replay: true };
    }
    reason = check.reason;
  }
  // Whose proof was it? Another agent's valid proof is consumed: it is in history now.
  const owner = proofOwner(run.records, r.proof);
  if (owner?.cap && typeof r.proof === 'string') owner.cap = { anchor: r.proof, used: owner.cap.used + 1 };
  const message = spoofMessage(claimed, reason, owner?.id);
  run.record('spoof_attempt', owner?.id ?? 'unknown', {
    claimed,
    source,
    request: { role: r.role, name: r.name },
    reason,
    ...(owner ? { by: owner.id } : {}),
  });
  run.refusals.push({
    at: new Date().toISOString(),
    source,
    request: {
      role: String(r.role).slice(0, 100),
      name: String(r.name).slice(0, 100),
      requestedBy: claimed.slice(0, 100),
    },
    reason: message,
  });
  keepRecentRefusals(run.refusals);
  log.warn('spoof attempt refused', {
    runId: run.runId,
    claimed: claimed.slice(0, 100),
    by: owner?.id,
    source,
  });
  return { ok: false, reason: message };
}

/**
 * A message from an agent must prove it comes from that agent (as its requests do); the operator's
 * messages (`from: operator`) carry no proof. A refusal is audited as a spoof attempt.
 */
export function authenticateSender(
  run: TeamRun,
  req: { from: string; proof?: string },
  source: 'signal' | 'update',
): Authentication {
  if (req.from === OPERATOR) return { ok: true as const };
  return authenticate(run, { requestedBy: req.from, proof: req.proof }, source);
}
