import { describe, expect, it } from 'vitest';
import { EARLY_EVENTS_MESSAGE } from '../../workflows/interceptors';
import { isRefusedQuery, retryRefusedQueries } from '../../src/query-retry';

type QueryFn = NonNullable<ReturnType<typeof retryRefusedQueries>['query']>;
const input = {} as Parameters<QueryFn>[0];

function clock() {
  let t = 0;
  return { now: () => t, sleep: (ms: number) => Promise.resolve(void (t += ms)) };
}

describe('queries refused by the workflow guard', () => {
  it('are asked again until answered', async () => {
    const c = clock();
    let calls = 0;
    const query = retryRefusedQueries(c.sleep, c.now).query!;
    const answer = await query(input, () => {
      calls += 1;
      return calls < 4
        ? Promise.reject(new Error(`Query failed: ${EARLY_EVENTS_MESSAGE}`))
        : Promise.resolve('ok');
    });
    expect(answer).toBe('ok');
    expect(calls).toBe(4);
  });

  it('give up after about 20 s with the refusal itself', async () => {
    const c = clock();
    const query = retryRefusedQueries(c.sleep, c.now).query!;
    await expect(query(input, () => Promise.reject(new Error(EARLY_EVENTS_MESSAGE)))).rejects.toThrow(
      'Retry the query',
    );
    expect(c.now()).toBeGreaterThanOrEqual(20_000);
    expect(c.now()).toBeLessThan(21_000);
  });

  it('never retry any other failure', async () => {
    let calls = 0;
    const query = retryRefusedQueries().query!;
    await expect(
      query(input, () => {
        calls += 1;
        return Promise.reject(new Error('Workflow did not register a handler for budget'));
      }),
    ).rejects.toThrow('did not register');
    expect(calls).toBe(1);
    expect(isRefusedQuery('not an error')).toBe(false);
  });
});
