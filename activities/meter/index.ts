/**
 * Meter activities and the meter part of model-turn inputs. The workflow charges its ledger from
 * {@link MeterActivities.readMeter} after an agent ends, however it ended (completed, failed, cancelled,
 * rolled back, its worker killed): the meter holds every response the agent was served.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { Logger } from '../../src/logger';
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

/** Opens a gateway registration for one turn (both backends use it). */
export async function openMeter(
  gateway: () => Promise<MeterGateway>,
  runId: string,
  meter: z.infer<typeof MeterInputSchema>,
  hooks: Pick<MeterRegistration, 'onRefuse' | 'onRecord'> = {},
): Promise<MeterHandle> {
  const gw = await gateway();
  return gw.open({
    meterId: meter.id,
    runId,
    phase: meter.phase,
    agent: meter.agent,
    limits: meter.limits,
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
