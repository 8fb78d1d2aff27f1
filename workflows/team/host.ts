/**
 * A team's host (README "Many hosts"): a team's workspace lives on one host, as a run's does
 * (../project/hosts), and every step that touches it (each agent's directory operations and its turns)
 * goes to that host's queues. A new team (patch `team-host-queue`) claims its host with the run's own
 * `claimHost` before it starts its first agent; the host rides in the continue-as-new carry and in every
 * agent's input, and status and the audit trail show it.
 */
import { log } from '@temporalio/workflow';
import { hosts } from '../host-placement';
import type { TeamRun } from './run';

/** Claims the team's host, once, before any of its agents starts (a continued team has it already). */
export async function claimTeamHost(run: TeamRun): Promise<void> {
  if (!run.hosted || run.host) return;
  run.host = await hosts.claimHost();
  log.info('team placed on host', { runId: run.runId, host: run.host.hostId });
  run.record('host', 'workflow', { event: 'placed', host: run.host.hostId, queue: run.host.queue });
}
