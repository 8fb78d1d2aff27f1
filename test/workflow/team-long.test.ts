/**
 * Long teams (issue #13): 300 spawns in one team, half by update and half by signal, from four
 * requesters at once. The team continues as new (at least once) before its history grows large; every
 * request is answered (updates) or acted on (signals), none lost at the boundary; every agent is in
 * `team status`; every execution's history stays under 2 MB. Script agents that end at once keep it cheap.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import {
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  WorkflowUpdateStage,
  type WorkflowUpdateHandle,
} from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { capabilityProof } from '../../src/shared/identity';
import {
  requestAgentUpdate,
  spawnAgentSignal,
  type SpawnRequest,
  type SpawnResult,
  type TeamStatus,
} from '../../src/shared/team';
import { startTeam, teamStatus } from '../../src/teams';
import { waitFor } from '../harness/gates';
import { createTestEnv, env, tempDir, type TestEnv } from '../harness/temporal';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Four requesters (manager, architect, two engineers): two by update, two by signal, 75 requests each. */
const PER_REQUESTER = 75;
const ENGINEERS = 2;
const SPAWNS = (2 + ENGINEERS) * PER_REQUESTER;
const MB2 = 2 * 1024 * 1024;

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
  await t.startWorker();
});
afterAll(async () => t?.close());

describe('a long team', () => {
  // Minutes of work (4.5 on this 2-core machine under load), run by every `make test`: it is the only
  // check that a team crossing continue-as-new under a flood of requests loses nothing.
  it('300 spawns: continues as new, loses no signal or update, accounts for every agent, histories < 2 MB', async () => {
    const began = Date.now();
    const workspace = tempDir('orch-team-long-');
    // The agents the team starts with wait for the test's word, so that they stay able to request. A
    // slow poll: a dozen `sleep 0.2` loops alone would fork 60 processes a second on a 2-core machine.
    const hold = 'while [ ! -e release ]; do sleep 1; done';
    const input = await startTeam(t.client, {
      goal: 'Grow large',
      workspace,
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(undefined, { maxTeamSize: 1000 }),
      backend: 'script',
      taskQueue: t.taskQueue,
      engineers: ENGINEERS,
      instructions: { manager: hold, architect: hold, 'software-engineer': hold },
    });
    const { runId } = input;
    const handle = t.client.workflow.getHandle(runId);
    const requesters = [
      'manager-1',
      'architect-1',
      ...Array.from({ length: ENGINEERS }, (_, i) => `software-engineer-${i + 1}`),
    ];
    const by = (i: number): 'signal' | 'update' => (i % 2 === 0 ? 'update' : 'signal');
    await waitFor(async () => {
      const s = await teamStatus(t.client, runId);
      return s.agents.filter((a) => a.state === 'running').length === requesters.length;
    }, 'the requesters running');
    const key = (id: string) =>
      fs.readFileSync(path.join(t.config.outputsDir, runId, 'keys', `${id}.key`), 'utf8').trim();

    // Each requester sends its requests in order (its proofs are a chain); the four run at once. An
    // update is sent once the previous one is accepted (its proof consumed), not completed: the agent
    // starts of one requester overlap. A call that fails short of the workflow's own answer (a timeout, an
    // update the loaded server aborted when its workflow task timed out) is made again under the same
    // update id and proof, as src/teams does: moving on would send the next proof while the workflow
    // still waits for this one. (src/teams reads the chain's position from the team before each request.)
    const sent = { signals: 0, updates: 0, retried: 0 };
    const accepted: WorkflowUpdateHandle<SpawnResult>[] = [];
    const errors: string[] = [];
    const RETRY_FOR_MS = 300_000;
    async function again<T>(what: string, fn: () => Promise<T>): Promise<T> {
      const deadline = Date.now() + RETRY_FOR_MS;
      for (;;) {
        try {
          return await fn();
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError || Date.now() > deadline) throw err;
          if (!(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError))
            console.warn(`${what}: asked again after ${String(err)}`);
          sent.retried += 1;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    const update = (req: SpawnRequest) =>
      again(req.name, () =>
        handle.startUpdate(requestAgentUpdate, {
          args: [req],
          updateId: req.name,
          waitForStage: WorkflowUpdateStage.ACCEPTED,
        }),
      );
    // Asked of the execution that accepted it: the team may have continued as new since.
    const outcome = (u: WorkflowUpdateHandle<SpawnResult>) =>
      again(u.updateId, () =>
        t.client.workflow.getHandle(runId, u.workflowRunId).getUpdateHandle<SpawnResult>(u.updateId).result(),
      );
    async function requester(id: string, by: 'signal' | 'update'): Promise<void> {
      const secret = key(id);
      const role = id.startsWith('software-engineer') ? 'intern' : 'software-engineer';
      for (let i = 0; i < PER_REQUESTER; i++) {
        // One unbroken flood: requests that land while the team drains for continue-as-new are queued
        // for its next execution (patch team-drain-queue), so the drain does not last as long as the flood.
        const req: SpawnRequest = {
          role,
          name: `${id}-${by}-${i + 1}`,
          instructions: 'true',
          requestedBy: id,
          proof: capabilityProof(secret, 'team', i)!,
        };
        try {
          if (by === 'signal') {
            // A signal sent twice is harmless: the same name and proof are a replay the team ignores.
            await again(req.name, () => handle.signal(spawnAgentSignal, req));
            sent.signals += 1;
          } else {
            accepted.push(await update(req));
            sent.updates += 1;
          }
        } catch (err) {
          errors.push(`${req.name}: ${String(err)}`);
        }
      }
    }
    await Promise.all(requesters.map((id, i) => requester(id, by(i))));
    const answered = await Promise.all(accepted.map(outcome));
    const requested = Date.now();
    expect(errors).toEqual([]);
    expect(sent).toMatchObject({ signals: SPAWNS / 2, updates: SPAWNS / 2 });
    expect(answered).toHaveLength(SPAWNS / 2);
    expect(answered.filter((a) => a.duplicate)).toEqual([]);

    // Every request became an agent, and every agent ended; then the requesters are let go.
    const total = requesters.length + SPAWNS;
    // Watched in the workspace, not by query: the status of 300 agents is big, and a query on an evicted
    // run replays its whole history on a busy worker. Each ended agent's directory is archived.
    const teamDir = path.join(workspace, '.team');
    await waitFor(
      () => fs.readdirSync(teamDir).filter((d) => d.endsWith('-completed')).length === SPAWNS,
      'every requested agent ended',
      1_200_000,
    );
    fs.writeFileSync(path.join(workspace, 'release'), '');
    const final = (await handle.result()) as TeamStatus;
    const ended = Date.now();

    expect(final.state).toBe('completed');
    expect(final.refusals).toEqual([]);
    expect(final.agents).toHaveLength(total);
    expect(final.agents.filter((a) => a.state !== 'completed').map((a) => [a.id, a.state, a.error])).toEqual(
      [],
    );
    const names = new Set(final.agents.map((a) => a.name));
    requesters.forEach((id, n) => {
      for (let i = 1; i <= PER_REQUESTER; i++) expect(names.has(`${id}-${by(n)}-${i}`), id).toBe(true);
    });
    // Ids are unique and dense per role: no request started two agents.
    expect(new Set(final.agents.map((a) => a.id)).size).toBe(total);
    expect(final.agents.filter((a) => a.role === 'intern')).toHaveLength(ENGINEERS * PER_REQUESTER);
    // The requesters proved every request: the chains moved exactly 75 each.
    for (const id of requesters)
      expect(final.agents.find((a) => a.id === id)?.proofsUsed).toBe(PER_REQUESTER);
    expect(final.continuedAsNew ?? 0).toBeGreaterThanOrEqual(1);

    // `team status` (the real CLI) accounts for every agent.
    const shown = await execa(
      process.execPath,
      [path.join(ROOT, 'bin/orchestrator.js'), 'team', 'status', runId],
      {
        reject: false,
        env: { TEMPORAL_ADDRESS: t.config.temporal.address, LOG_LEVEL: 'warn', NO_COLOR: '1' },
        stdin: 'ignore',
      },
    );
    expect(shown.exitCode, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`${total} agents (0 active)`);
    for (const a of final.agents) expect(shown.stdout).toContain(a.id);

    // Every execution of the team: how many, and how big their histories are.
    const runs = await waitFor(async () => {
      const listed = await execa(env('ORCH_TEST_TEMPORAL_CLI'), [
        'workflow',
        'list',
        '--address',
        t.config.temporal.address,
        '--query',
        `WorkflowId = '${runId}'`,
        '--output',
        'json',
      ]);
      const ids = (JSON.parse(listed.stdout || '[]') as { execution: { runId: string } }[]).map(
        (w) => w.execution.runId,
      );
      return ids.length === (final.continuedAsNew ?? 0) + 1 && ids;
    }, 'every execution of the team in `temporal workflow list`');
    const sizes: { events: number; bytes: number }[] = [];
    for (const r of runs) {
      const history = await t.client.workflow.getHandle(runId, r).fetchHistory();
      sizes.push({
        events: history.events?.length ?? 0,
        bytes: temporal.api.history.v1.History.encode(history).finish().length,
      });
    }
    // Shown with the test's output (vitest --silent=false): the figures README's performance section cites.
    console.error(
      `team ${runId}: ${runs.length} executions ${JSON.stringify(sizes)}; ` +
        `${answered.filter((a) => a.state === 'starting').length} update answers queued; requests sent in ` +
        `${((requested - began) / 1000).toFixed(0)} s (${sent.retried} update calls made again), all ${total} ` +
        `agents ended after ${((ended - began) / 1000).toFixed(0)} s`,
    );
    for (const s of sizes) expect(s.bytes).toBeLessThan(MB2);
  }, 1_500_000);
});
