/**
 * Where a model turn's limits come from: the run's ledger (query `meterLimits`), never the agent
 * workflow's own copy, which anything that reaches the server can overwrite with a `budgetLimits` signal.
 */
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { openMeter, runLimitsFrom } from '../../activities/meter';
import type { MeterGateway, MeterRegistration } from '../../src/meter/gateway';
import { createLedger, limitsFor } from '../../src/shared/budget';
import { isRetryable } from '../../src/shared/failures';
import { meterLimitsAnswer } from '../../workflows/meter-limits';

const ledger = createLedger({
  run: { usd: 1.5, tokens: 100_000 },
  phases: { development: { usd: 0.5 } },
  agents: { development: { developer: { usd: 0.01 } } },
});

/** A client whose every query answers `answer` (or rejects with it), recording what was asked. */
function fakeClient(answer: () => Promise<unknown>) {
  const asked: Array<{ workflowId: string; query: string; args: unknown[] }> = [];
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        query: (def: { name: string }, ...args: unknown[]) => {
          asked.push({ workflowId, query: def.name, args });
          return answer();
        },
      }),
    },
  };
  return { client: client as unknown as Parameters<typeof runLimitsFrom>[0], asked };
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('meterLimits', () => {
  it("answers the ledger's limits for the meter asked about, and refuses a malformed request", () => {
    expect(meterLimitsAnswer(ledger, { phase: 'development', agent: 'developer' })).toEqual(
      limitsFor(ledger, 'development', 'developer'),
    );
    expect(meterLimitsAnswer(ledger, { phase: 'development', agent: 'developer' }).agent).toEqual({
      microUsd: 10_000,
    });
    for (const bad of [
      null,
      42,
      {},
      { phase: 'development' },
      { phase: 1, agent: 'x' },
      { phase: 'a', agent: 'b', x: 1 },
    ]) {
      expect(() => meterLimitsAnswer(ledger, bad), JSON.stringify(bad)).toThrow(
        /invalid meterLimits request/,
      );
    }
  });

  it('a turn opens its meter under the limits the run answers, not the ones its agent workflow holds', async () => {
    const fromRun = limitsFor(ledger, 'development', 'developer');
    const { client, asked } = fakeClient(() => Promise.resolve(fromRun));
    const opened: MeterRegistration[] = [];
    const gateway = {
      open: (reg: MeterRegistration) => {
        opened.push(reg);
        return Promise.resolve({});
      },
    } as unknown as MeterGateway;
    await openMeter(
      () => Promise.resolve(gateway),
      'run-1',
      // What a forged budgetLimits signal left in the agent workflow: no limits at all.
      { id: 'development-developer', phase: 'development', agent: 'developer', limits: {} },
      {},
      runLimitsFrom(client),
    );
    expect(asked).toEqual([
      { workflowId: 'run-1', query: 'meterLimits', args: [{ phase: 'development', agent: 'developer' }] },
    ]);
    expect(opened.map((r) => r.limits)).toEqual([fromRun]);
  });

  it('a run that does not answer, or answers garbage, fails the turn as retryable LimitsUnavailable', async () => {
    const down = fakeClient(() => Promise.reject(new Error('deadline exceeded')));
    const f1 = await failureOf(runLimitsFrom(down.client)('run-1', { phase: 'p', agent: 'a' }));
    expect(f1.type).toBe('LimitsUnavailable');
    expect(f1.message).toMatch(/run run-1 did not answer .*p\/a: deadline exceeded/);
    expect(f1.nonRetryable).toBe(false);
    expect(isRetryable(f1.type ?? undefined)).toBe(true);

    const odd = fakeClient(() => Promise.resolve({ agent: { microUsd: -5 } }));
    const f2 = await failureOf(runLimitsFrom(odd.client)('run-1', { phase: 'p', agent: 'a' }));
    expect(f2.type).toBe('LimitsUnavailable');
    expect(f2.message).toMatch(/answered meterLimits with agent\.microUsd/);
  });
});
