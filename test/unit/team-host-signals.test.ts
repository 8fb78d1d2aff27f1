/** The team move's two signals take only well-formed payloads (anyone who can signal may send anything). */
import { describe, expect, it } from 'vitest';
import { TeamHostLostSchema, TeamHostSchema } from '../../src/shared/team';

describe('teamHostMoved and teamHostLost payloads', () => {
  it('accept a host as claimHost returns it, and a loss report', () => {
    const host = { hostId: 'b', queue: 'orchestrator-host-b', moveAfterMs: 300_000, store: true };
    expect(TeamHostSchema.parse(host)).toEqual(host);
    expect(TeamHostLostSchema.parse({ agentId: 'dev-1', host: 'a' })).toEqual({
      agentId: 'dev-1',
      host: 'a',
    });
  });

  it('refuse null, missing fields, an empty queue and a move time that is not a positive integer', () => {
    for (const bad of [
      null,
      42,
      {},
      { hostId: 'b', queue: '', moveAfterMs: 1 },
      { hostId: 'b', queue: 'q', moveAfterMs: -1 },
      { hostId: 'b', queue: 'q', moveAfterMs: 'soon' },
    ]) {
      expect(TeamHostSchema.safeParse(bad).success).toBe(false);
    }
    for (const bad of [null, 'a', { agentId: 'dev-1' }, { agentId: '', host: 'a' }]) {
      expect(TeamHostLostSchema.safeParse(bad).success).toBe(false);
    }
  });
});
