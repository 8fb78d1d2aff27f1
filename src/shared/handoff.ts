/**
 * Context hand-offs between phases, as pure decisions: the summary a phase ends with (its agents'
 * SUMMARIZE output, or a script agent's printed summary), which earlier phases' summaries a phase's
 * agents receive, and the note a retried phase's agents get about the gates that failed. Agents receive
 * summaries, never transcripts. Deterministic (workflows import it).
 */
import type { AgentResult, PhaseResult } from './run';

/** Most characters of one phase's summary handed to later agents (the file keeps all of it). */
export const HANDOFF_PHASE_CHARS = 4000;
/** Most characters of the failed-gates note a retried phase's agents get. */
export const RETRY_NOTE_CHARS = 8000;

/** Where a phase's summary is written, relative to the run's outputs folder. */
export function summaryRelPath(phase: string): string {
  return `${phase}/summary.md`;
}

/** The summary a completed phase ends with (written to `outputs/<run>/<phase>/summary.md`). */
export function phaseSummary(
  phase: string,
  attempt: number,
  agents: readonly Pick<AgentResult, 'agentId' | 'role' | 'status' | 'summary'>[],
): string {
  const parts = agents
    .filter((a) => a.status === 'completed')
    .map((a) => `## ${a.agentId} (${a.role})\n\n${a.summary.trim() || '(no summary)'}`);
  return `# Summary of phase "${phase}"${attempt > 1 ? ` (attempt ${attempt})` : ''}\n\n${parts.join('\n\n')}\n`;
}

/**
 * The indices of the earlier phases whose summaries phase `index` receives: the ones its
 * `summaries_from` names, or every earlier phase when it names none.
 */
export function handoffSources(
  phaseNames: readonly string[],
  index: number,
  summariesFrom: readonly string[] | undefined,
): number[] {
  const earlier = phaseNames.slice(0, index).map((_, i) => i);
  return summariesFrom === undefined
    ? earlier
    : earlier.filter((i) => summariesFrom.includes(phaseNames[i]!));
}

/**
 * The hand-off section of an agent's prompt: each source phase's summary from its latest completed
 * attempt. A phase whose result no longer holds its agents (an earlier execution's, after
 * continue-as-new) is named with the file that holds its summary. Empty when there is nothing to hand
 * over.
 */
export function handoffSection(
  results: readonly Pick<PhaseResult, 'phase' | 'index' | 'attempt' | 'status' | 'agents'>[],
  sources: readonly number[],
  summaryFile: (phase: string) => string,
): string {
  const parts = sources.flatMap((i) => {
    const done = results
      .filter((r) => r.index === i && r.status === 'completed')
      .sort((a, b) => b.attempt - a.attempt)[0];
    if (!done) return [];
    if (done.agents.length === 0)
      return [`# Summary of phase "${done.phase}": see ${summaryFile(done.phase)}`];
    const text = phaseSummary(done.phase, done.attempt, done.agents).trim();
    return [text.length > HANDOFF_PHASE_CHARS ? `${text.slice(0, HANDOFF_PHASE_CHARS)}\n[…cut]` : text];
  });
  if (parts.length === 0) return '';
  return `Context from earlier phases (their summaries; the work itself is in the workspace):\n\n${parts.join('\n\n')}`;
}

/**
 * What the agents of a retried phase are told: which gates failed on the previous attempt and their
 * output. Empty when the previous attempt did not fail on gates (a first run, a rollback by hand).
 */
export function retryNote(previous: Pick<PhaseResult, 'attempt' | 'errors'> | undefined): string {
  const gates = (previous?.errors ?? []).filter((e) => /^gate "/.test(e));
  if (!previous || gates.length === 0) return '';
  const note =
    `This phase is running again: attempt ${previous.attempt} failed these gates. ` +
    `Fix what they report before anything else.\n${gates.map((g) => `- ${g}`).join('\n')}`;
  return note.length > RETRY_NOTE_CHARS ? `${note.slice(0, RETRY_NOTE_CHARS)}\n[…cut]` : note;
}
