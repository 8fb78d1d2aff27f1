/**
 * A worker process SIGKILLed while the team grows: requests in flight (made by agents through the CLI)
 * are neither lost nor executed twice. Script agents keep it fast; the requests still go through the
 * real CLI from inside the agents' processes.
 */
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import type { TeamStatus } from '../../src/shared/team';
import { startTeam, teamStatus } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv, spawnWorkerProcess } from '../harness/temporal';
import { KILL_TEST_HEARTBEAT_S } from '../harness/specs';

async function stop(w: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (w.exitCode !== null || w.signalCode !== null) return;
  const exited = new Promise((r) => w.once('exit', r));
  w.kill(signal);
  await exited;
}

describe('team durability', () => {
  let t: TestEnv;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    for (const w of workers) await stop(w, 'SIGKILL');
    await t.close();
  });

  it('a worker killed during team growth loses no request and spawns none twice', async () => {
    const workspace = tempDir('orch-team-crash-');
    fs.writeFileSync(
      path.join(workspace, 'eng.sh'),
      'echo "$ORCHESTRATOR_AGENT_ID" >> starts.log\n' +
        'orchestrator team request --role intern --name "intern-of-$ORCHESTRATOR_AGENT_ID" --instructions-file intern.sh\n',
    );
    fs.writeFileSync(path.join(workspace, 'intern.sh'), 'echo "$ORCHESTRATOR_AGENT_ID" >> starts.log\n');
    const w1 = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
    workers.push(w1);
    const input = await startTeam(t.client, {
      goal: 'Grow under fire',
      workspace,
      outputsDir: t.config.outputsDir,
      // Killed turns are retried ~10 s after their last beat instead of 30 s (test/harness/specs).
      policy: loadHierarchyPolicy(undefined, {
        maxTeamSize: 20,
        agent: { turnHeartbeatTimeoutS: KILL_TEST_HEARTBEAT_S },
      }),
      backend: 'script',
      taskQueue: t.taskQueue,
      instructions: {
        manager:
          'echo run >> manager-runs.log; for i in 1 2 3 4; do orchestrator team request --role software-engineer --name "eng-$i" --instructions-file eng.sh || exit 1; done',
      },
    });
    const engineers = (s: TeamStatus) => s.agents.filter((a) => a.role === 'software-engineer').length;
    // Kill the worker while the manager is still requesting engineers.
    await waitFor(
      async () => {
        const n = engineers(await teamStatus(t.client, input.runId));
        return n >= 2 && n < 4;
      },
      'two engineers requested',
      120_000,
    );
    await stop(w1, 'SIGKILL');

    const w2 = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
    workers.push(w2);
    const final = (await t.client.workflow.getHandle(input.runId).result()) as TeamStatus;
    await stop(w2, 'SIGTERM');

    // Each agent's row, for a failure message: who asked for it, how it ended and why.
    const rows = JSON.stringify(
      final.agents.map((a) => ({
        id: a.id,
        name: a.name,
        by: a.requestedBy,
        state: a.state,
        error: a.error,
      })),
    );
    expect(final.state, rows).toBe('completed');
    const ids = final.agents.map((a) => a.id).sort();
    expect(ids, rows).toEqual(
      [
        'architect-1',
        'intern-1',
        'intern-2',
        'intern-3',
        'intern-4',
        'manager-1',
        'software-engineer-1',
        'software-engineer-2',
        'software-engineer-3',
        'software-engineer-4',
      ].sort(),
    );
    const names = final.agents.map((a) => a.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((n) => n.startsWith('eng-')).sort()).toEqual(['eng-1', 'eng-2', 'eng-3', 'eng-4']);
    for (const a of final.agents.filter((x) => x.role === 'intern')) {
      expect(a.name).toBe(`intern-of-${a.requestedBy}`);
    }
    expect(final.agents.every((a) => a.state === 'completed')).toBe(true);
    // Exactly one agent workflow per agent: nothing was started twice.
    const started: string[] = [];
    for await (const wf of t.client.workflow.list({ query: `WorkflowType = 'teamAgentWorkflow'` })) {
      if (wf.workflowId.startsWith(`${input.runId}/`)) started.push(wf.workflowId);
    }
    expect(started.sort()).toEqual(ids.map((id) => `${input.runId}/${id}`).sort());
    // Every agent's directory was archived once.
    expect(fs.readdirSync(path.join(workspace, '.team')).sort()).toEqual(
      ids.map((id) => `${id}-completed`).sort(),
    );
    // The manager was running when its worker died, so it ran again and repeated its requests: the
    // repeats were answered with the agents already started.
    const managerRuns = fs.readFileSync(path.join(workspace, 'manager-runs.log'), 'utf8').trim().split('\n');
    expect(managerRuns.length).toBeGreaterThanOrEqual(2);
    // Every engineer and intern process ran (a retried one may have run again after the crash).
    const starts = new Set(fs.readFileSync(path.join(workspace, 'starts.log'), 'utf8').trim().split('\n'));
    expect([...starts].sort()).toEqual(ids.filter((id) => /engineer|intern/.test(id)).sort());
  });
});
