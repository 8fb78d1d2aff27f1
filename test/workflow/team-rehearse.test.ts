/**
 * `team start --rehearse` as a user runs it (issue #13): the real `claude` CLI against the local model
 * server, the CLI's own in-process worker on a task queue of its own, the real dev server. The team ends
 * completed, and once that worker is gone `team status` still reads the team, from its recorded result,
 * instead of waiting on a query no worker will ever take.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TeamStatus } from '../../src/shared/team';
import { cliEnv, runCli } from '../harness/cli';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

/** Two real `claude` sessions and a worker start on a two-core machine that others share. */
const TIMEOUT = 400_000;
let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
});
afterAll(async () => t?.close());

describe('a rehearsed team', () => {
  it(
    'ends completed with every agent done, and team status reads it after the worker is gone',
    async () => {
      const workspace = tempDir('orch-team-rehearse-');
      const started = await runCli(
        ['team', 'start', 'Write a greeting module', '--rehearse', '--json', '--workspace', workspace],
        cliEnv(t),
        TIMEOUT,
      );
      expect(started.code, started.stderr).toBe(0);
      const final = JSON.parse(started.stdout) as TeamStatus;
      expect(final.state).toBe('completed');
      // The starting team: a manager and an architect, both real `claude` sessions that finished their tasks.
      expect(final.agents.map((a) => a.role).sort()).toEqual(['architect', 'manager']);
      for (const a of final.agents) expect(a.state, `${a.id}: ${JSON.stringify(a)}`).toBe('completed');
      expect(final.workspace).toBe(workspace);

      // The rehearsal's worker left with the CLI: the team is read from what it recorded.
      const status = await runCli(['team', 'status', final.runId, '--json'], cliEnv(t), 120_000);
      expect(status.code, status.stderr).toBe(0);
      const read = JSON.parse(status.stdout) as TeamStatus;
      expect(read.runId).toBe(final.runId);
      expect(read.state).toBe('completed');
      expect(read.agents.map((a) => [a.id, a.state])).toEqual(final.agents.map((a) => [a.id, a.state]));

      // The human form names the team's state and each agent.
      const human = await runCli(['team', 'status', final.runId], cliEnv(t), 120_000);
      expect(human.code, human.stderr).toBe(0);
      for (const a of final.agents) expect(human.stdout).toContain(a.id);
    },
    TIMEOUT + 60_000,
  );
});
