/**
 * The `meterLimits` query of project and team runs: the limits the run's own ledger holds for one agent's
 * meter. Model turns ask it when they open their meter (activities/meter), so what the gateway admits
 * under comes from the run, never from what an agent workflow was signalled (anyone who reaches the server
 * can signal it).
 */
import { setHandler } from '@temporalio/workflow';
import { limitsFor, type Ledger } from '../src/shared/budget';
import { meterLimitsQuery, MeterLimitsRequestSchema, type MeterLimitsMessage } from '../src/shared/messages';
import { zodIssueText } from '../src/shared/zod-issues';

/** The limits `ledger` holds for the meter `raw` names; throws (failing only the query) on a bad request. */
export function meterLimitsAnswer(ledger: Ledger, raw: unknown): MeterLimitsMessage {
  const req = MeterLimitsRequestSchema.safeParse(raw);
  if (!req.success) throw new Error(`invalid meterLimits request: ${zodIssueText(req.error, 'request')}`);
  return limitsFor(ledger, req.data.phase, req.data.agent);
}

/** Answers `meterLimits` from the ledger `ledgerOf` returns at the time of each query. */
export function handleMeterLimits(ledgerOf: () => Ledger): void {
  setHandler(meterLimitsQuery, (raw) => meterLimitsAnswer(ledgerOf(), raw));
}
