/**
 * Meter activities and the meter part of model-turn inputs. The workflow charges its ledger from
 * {@link MeterActivities.readMeter} after an agent ends, however it ended (completed, failed, cancelled,
 * rolled back, its worker killed): the meter holds every response the agent was served.
 */
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { Logger } from '../../src/logger';
import {
  meterLimitsQuery,
  MeterLimitsMessageSchema,
  type MeterLimitsMessage,
  type MeterLimitsRequest,
} from '../../src/shared/messages';
import { zodIssueText } from '../../src/shared/zod-issues';
import type { MeterGateway, MeterHandle, MeterRegistration } from '../../src/meter/gateway';
import {
  MeterIdSchema,
  meterFile,
  readMeterFile,
  summarizeMeter,
  type MeterSummary,
} from '../../src/meter/meter';

const AmountLimitSchema = z.object({
  microUsd: z.number().int().nonnegative().optional(),
  tokens: z.number().int().nonnegative().optional(),
});

/** Which meter a model turn spends on, and the limits every one of its requests is admitted under. */
export const MeterInputSchema = z.object({
  id: MeterIdSchema,
  phase: z.string(),
  agent: z.string(),
  limits: z
    .object({
      run: AmountLimitSchema.optional(),
      phase: AmountLimitSchema.optional(),
      agent: AmountLimitSchema.optional(),
    })
    .default({}),
});
export type MeterInput = z.input<typeof MeterInputSchema>;

/** Failure type of a turn stopped because a limit refused its next model request. */
export const BUDGET_EXCEEDED = 'BudgetExceeded';

export const ReadMeterInputSchema = z.object({ runId: MeterIdSchema, meterId: MeterIdSchema });
export type ReadMeterInput = z.infer<typeof ReadMeterInputSchema>;

/** The limits a run's ledger holds now for one meter: what its turns are admitted under. */
export type RunLimits = (runId: string, req: MeterLimitsRequest) => Promise<MeterLimitsMessage>;

/**
 * {@link RunLimits} by query `meterLimits` on the run (project or team) through `client`. A run that
 * cannot answer (its worker busy or gone) is an infrastructure failure: the turn's activity is retried,
 * never admitted under limits nobody vouched for.
 */
export function runLimitsFrom(client: Pick<Client, 'workflow'>): RunLimits {
  return async (runId, req) => {
    let raw: unknown;
    try {
      raw = await client.workflow.getHandle(runId).query(meterLimitsQuery, req);
    } catch (err) {
      throw ApplicationFailure.create({
        type: 'LimitsUnavailable',
        message: `run ${runId} did not answer which limits bind ${req.phase}/${req.agent}: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
    const parsed = MeterLimitsMessageSchema.safeParse(raw);
    if (!parsed.success) {
      throw ApplicationFailure.create({
        type: 'LimitsUnavailable',
        message: `run ${runId} answered meterLimits with ${zodIssueText(parsed.error, 'limits')}`,
      });
    }
    return parsed.data;
  };
}

/**
 * Opens a gateway registration for one turn (both backends use it). With `runLimits` (every turn the
 * workflows start), its requests are admitted under the limits the run holds now, not under `meter.limits`:
 * those come from the agent workflow, which anything that reaches the server can signal new limits.
 */
export async function openMeter(
  gateway: () => Promise<MeterGateway>,
  runId: string,
  meter: z.infer<typeof MeterInputSchema>,
  hooks: Pick<MeterRegistration, 'onRefuse' | 'onRecord'> = {},
  runLimits?: RunLimits,
): Promise<MeterHandle> {
  const limits = runLimits
    ? await runLimits(runId, { phase: meter.phase, agent: meter.agent })
    : meter.limits;
  const gw = await gateway();
  return gw.open({
    meterId: meter.id,
    runId,
    phase: meter.phase,
    agent: meter.agent,
    limits,
    ...hooks,
  });
}

export function createMeterActivities(deps: { outputsDir: string; logger: Logger }) {
  return {
    /** What an agent start was served, per served model, from its meter file (empty when it never spent). */
    readMeter: (raw: ReadMeterInput): Promise<MeterSummary> => {
      const parsed = ReadMeterInputSchema.safeParse(raw);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: 'InvalidInput',
          message: `readMeter input: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
          nonRetryable: true,
        });
      }
      const s = summarizeMeter(
        readMeterFile(meterFile(deps.outputsDir, parsed.data.runId, parsed.data.meterId)),
      );
      deps.logger.debug({ ...parsed.data, microUsd: s.microUsd, responses: s.responses }, 'meter read');
      return Promise.resolve(s);
    },
  };
}

export type MeterActivities = ReturnType<typeof createMeterActivities>;
