/**
 * When a team continues as new (patch `team-continue-as-new`): once its history is big enough
 * (src/shared/team-carry `shouldContinueAsNew`), and only when nothing is in flight that the next
 * execution could not pick up: every accepted request started, every handler, agent end and meter read
 * done.
 */
import { allHandlersFinished, workflowInfo } from '@temporalio/workflow';
import { shouldContinueAsNew } from '../../src/shared/team-carry';
import type { TeamRun } from './run';
import type { AgentRecord } from './types';

/** Whether this execution's history is big enough to continue as new. */
export function historyFull(run: TeamRun): boolean {
  const info = workflowInfo();
  return shouldContinueAsNew(
    { length: info.historyLength, size: info.historySize, suggested: info.continueAsNewSuggested },
    run.continueAt,
  );
}

/** What is in flight in a team, as {@link isQuiet} weighs it. */
export interface InFlight {
  pending: number;
  finishing: number;
  reading: number;
  records: readonly Pick<AgentRecord, 'state'>[];
  handlersFinished: boolean;
}

/** Nothing in flight that the next execution could not pick up. */
export function isQuiet(f: InFlight): boolean {
  return (
    f.pending === 0 &&
    f.finishing === 0 &&
    f.reading === 0 &&
    f.records.every((r) => r.state !== 'starting') &&
    f.handlersFinished
  );
}

/** {@link isQuiet} of the team now. */
export function quiet(run: TeamRun): boolean {
  // A checkpoint or a move in flight (./host) finishes in this execution: the carry holds its outcome.
  if (run.checkpointing || run.moving) return false;
  return isQuiet({
    pending: run.pending.length,
    finishing: run.finishing,
    reading: run.reading,
    // Queued requests wait for the next execution: they are carried, not in flight.
    records: run.queued.length ? run.records.filter((r) => !run.queued.includes(r)) : run.records,
    handlersFinished: allHandlersFinished(),
  });
}
