/**
 * Whether a team believes an `agentEnded` signal. The signal carries no proof: anything that reaches the
 * server can send it, naming any agent, so an agent could end a running teammate in the team's books (and
 * that teammate's later spend would never be charged). An agent this execution started tells its end by
 * its child result, which comes from the server; its signal is kept only in case the team continues as
 * new before that result. For an agent an earlier execution started, the only news is the signal: the
 * team asks the server whether the agent's workflow has closed (it closes a moment after it signals)
 * before it believes it.
 *
 * The check runs beside the team, not in the signal's handler: a handler in flight holds continue-as-new,
 * and a claim nobody answers must not hold it. A check still open at continue-as-new rides in the carry
 * (`claimedEnds`) and the next execution asks again.
 */
import type { TeamAgentOutcome } from '../../src/shared/team';
import { ends } from './proxies';
import { finishAgent } from './roster';
import type { TeamRun } from './run';
import type { AgentRecord } from './types';

/**
 * How long the server is asked whether a claimed end's workflow has closed before the claim is refused.
 * A real end closes a moment after its signal, but on a loaded server that moment can be long, and a real
 * end refused would leave its agent running in the team's books: so, long (the check heartbeats).
 */
export const END_CLOSE_WAIT_MS = 10 * 60_000;

/**
 * Takes `claim`, an `agentEnded` for `rec` (patch `team-verified-ends`). For an agent this execution
 * started, its child result tells; the claim is only kept, for the next execution to check should this one
 * continue as new before that result arrives (an agent signals its end, then closes: a team that continues
 * in between never sees the child's close, and the signal it took was the only news). Otherwise the claim
 * is checked against the server beside the team. The latest claim wins: a false one sent before the
 * agent's own is replaced by it.
 */
export function claimEnd(run: TeamRun, rec: AgentRecord, claim: TeamAgentOutcome): void {
  if (run.ended.has(rec.id)) return;
  const checking = run.claimedEnds.has(rec.id);
  run.claimedEnds.set(rec.id, claim);
  if (!rec.handle && !checking) void checkEnd(run, rec);
}

/**
 * Checks the claims a previous execution left open (its carry's `claimedEnds`: since the carry keeps only
 * those of agents still active, every one; a check of an agent already over changes nothing).
 */
export function checkCarriedEnds(run: TeamRun): void {
  for (const id of run.claimedEnds.keys()) {
    const rec = run.byId(id);
    if (rec) void checkEnd(run, rec);
    else run.claimedEnds.delete(id);
  }
}

async function checkEnd(run: TeamRun, rec: AgentRecord): Promise<void> {
  const { closed } = await ends.agentWorkflowClosed({
    workflowId: rec.workflowId,
    waitMs: END_CLOSE_WAIT_MS,
  });
  const claim = run.claimedEnds.get(rec.id);
  run.claimedEnds.delete(rec.id);
  if (!claim || run.ended.has(rec.id)) return;
  if (closed) {
    await finishAgent(run, rec, { result: claim });
    return;
  }
  run.record('spoof_attempt', 'unknown', {
    claimed: rec.id,
    source: 'signal',
    request: 'agentEnded',
    reason: `its workflow ${rec.workflowId} was still running: an end it did not send`,
  });
}
