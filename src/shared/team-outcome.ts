/**
 * How a team run ends, decided from its agents' rows (issue #13, honest outcomes): a team whose agents
 * all failed has failed, and so has one that the policy stopped because an agent failed
 * (`onAgentFailure: stop`). Deterministic: teamWorkflow decides with it, and unit tests check it.
 */
import type { TeamAgentRow } from './team';

/** A failed agent, as the team's failure names it. */
export interface FailedAgentRef {
  id: string;
  name: string;
  errorType?: string;
  error?: string;
}

/** Why a team failed: the message of its `TeamFailed` failure, and the agents it names. */
export interface TeamVerdict {
  message: string;
  failed: FailedAgentRef[];
}

/** The failure message names at most this many agents ("… and N more"); the status lists them all. */
export const NAMED_IN_MESSAGE = 10;

type Row = Pick<TeamAgentRow, 'id' | 'name' | 'state' | 'error' | 'errorType'>;

const ref = (r: Row): FailedAgentRef => ({
  id: r.id,
  name: r.name,
  ...(r.errorType ? { errorType: r.errorType } : {}),
  ...(r.error ? { error: r.error.slice(0, 200) } : {}),
});

const named = (r: FailedAgentRef): string =>
  `${r.id} (${[r.errorType, r.error?.slice(0, 120)].filter(Boolean).join(': ') || 'failed'})`;

/**
 * The team's verdict once every agent has ended: undefined when it did not fail (some agent completed
 * or was stopped, or it had no agents), else the message naming the failed agents.
 * `failedBy` is the agent whose failure stopped the team under `onAgentFailure: stop`.
 */
export function teamVerdict(agents: readonly Row[], failedBy?: string): TeamVerdict | undefined {
  const failed = agents.filter((a) => a.state === 'failed').map(ref);
  const culprit = failedBy === undefined ? undefined : failed.find((f) => f.id === failedBy);
  if (culprit) {
    return {
      message: `team failed: agent ${named(culprit)} failed and the policy (on_agent_failure: stop) stopped the team`,
      failed,
    };
  }
  if (agents.length === 0 || failed.length < agents.length) return undefined;
  const shown = failed.slice(0, NAMED_IN_MESSAGE).map(named).join(', ');
  const more = failed.length > NAMED_IN_MESSAGE ? ` and ${failed.length - NAMED_IN_MESSAGE} more` : '';
  return {
    message: `team failed: all ${failed.length} agents failed: ${shown}${more}`,
    failed,
  };
}
