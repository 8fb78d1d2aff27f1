/**
 * The team endpoint of an agent's turn (activities/team-tools/agent-gateway): it takes no request without
 * the turn's key, and for a team without capabilities (no proof the team could check) it acts as the agent
 * it serves only, whatever agent id a request names.
 */
import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { createAgentGateway, newTurnKey } from '../../activities/team-tools/agent-gateway';
import { createLogger } from '../../src/logger';

const logger = createLogger('silent', { component: 'test' });

/** A client that records which workflow each request reached, then fails it (nothing runs here). */
function recordingClient(reached: string[]): Client {
  const fail = () => Promise.reject(new Error('no server in unit tests'));
  return {
    workflow: {
      getHandle: (id: string) => {
        reached.push(id);
        return { executeUpdate: fail, startUpdate: fail, query: fail, describe: fail, signal: fail };
      },
    },
  } as unknown as Client;
}

const taskDone = (agentId: string) => ({ op: 'taskDone', runId: 'team-1', agentId, all: true });

describe('agent gateway', () => {
  it('refuses every request without a key when the endpoint has none', async () => {
    const reached: string[] = [];
    const gateway = createAgentGateway({
      client: recordingClient(reached),
      identity: { runId: 'team-1', agentId: 'intern-1' },
      logger,
    });
    for (const auth of [undefined, 'Bearer ', 'Bearer anything']) {
      const a = await gateway(auth, taskDone('intern-1'));
      expect(a.status, String(auth)).toBe(401);
    }
    expect(reached).toEqual([]);
  });

  it("a team without capabilities: the turn's key is checked, and the agent acts as itself only", async () => {
    const reached: string[] = [];
    const turnKey = newTurnKey();
    expect(turnKey).not.toBe(newTurnKey());
    expect(turnKey.length).toBeGreaterThanOrEqual(40);
    const gateway = createAgentGateway({
      client: recordingClient(reached),
      identity: { runId: 'team-1', agentId: 'intern-1', turnKey },
      logger,
    });
    expect((await gateway('Bearer wrong', taskDone('intern-1'))).status).toBe(401);
    // The intern names its manager: refused before anything reaches Temporal.
    const spoof = await gateway(`Bearer ${turnKey}`, taskDone('manager-1'));
    expect(spoof.status).toBe(403);
    expect(spoof.body.error).toMatch(/serves intern-1.*not as "manager-1"/);
    const asManager = await gateway(`Bearer ${turnKey}`, {
      op: 'request',
      runId: 'team-1',
      agentId: 'manager-1',
      role: 'intern',
      name: 'helper',
      instructions: 'help',
    });
    expect(asManager.status).toBe(403);
    expect(reached).toEqual([]);
    // As itself: the request reaches its own workflow.
    const own = await gateway(`Bearer ${turnKey}`, taskDone('intern-1'));
    expect(own.status).toBe(500);
    expect(reached).toEqual(['team-1/intern-1']);
  });

  it('a team with capabilities: the capability key is the key, and a named requester goes on for the team to judge', async () => {
    const reached: string[] = [];
    const gateway = createAgentGateway({
      client: recordingClient(reached),
      identity: { runId: 'team-1', agentId: 'intern-1', key: 'cap-secret' },
      logger,
    });
    expect((await gateway('Bearer other', taskDone('intern-1'))).status).toBe(401);
    await gateway('Bearer cap-secret', taskDone('manager-1'));
    // Passed on with a proof made from intern-1's key: the team refuses and audits it as a spoof attempt.
    expect(reached.length).toBeGreaterThan(0);
  });
});
