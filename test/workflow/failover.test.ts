/**
 * Failover between two workers: four agents run on worker 1, which is SIGKILLed while worker 2 polls the
 * same task queue. Every orphan of worker 1 is ended by its watchdog within 20 s of the kill (measured),
 * no agent's output shows two attempts writing at once, and every run completes on worker 2.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findMarkedProcesses } from '../../activities/watchdog';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import type { ProjectSummary } from '../../workflows/project';
import { Gates, waitFor } from '../harness/gates';
import { isAlive, processesIn } from '../harness/processes';
import { KILL_TEST_HEARTBEAT_S } from '../harness/specs';
import {
  createTestEnv,
  spawnWorkerProcess,
  stopWorkers,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

const AGENTS = 4;

describe('failover', () => {
  let t: TestEnv;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    await stopWorkers(workers);
    await t.close();
  });

  it('a SIGKILLed worker: orphans end within 20 s, no two attempts write at once, runs complete', async () => {
    const w1 = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
    workers.push(w1);
    await waitUntilPolling(t, w1.pid!);
    const workspaces = Array.from({ length: AGENTS }, () => tempDir('orch-failover-ws-'));
    // Each attempt writes "<its own random id> <ms>" every 100 ms, for at least 3 s and until the test
    // lets it finish: an orphan that lived on would interleave its lines with the retry's. Not `$$`: every
    // attempt runs in a pid namespace of its own (the sandbox), where its shell gets the same small pid.
    const go = path.join(new Gates('failover').dir, 'go');
    const writer = [
      'sh',
      '-c',
      `id=$(od -An -N4 -tu4 /dev/urandom | tr -d " "); i=0; while [ $i -lt 30 ] || [ ! -f '${go}' ]; do echo "$id $(date +%s%3N)" >> writes.log; sleep 0.1; i=$((i+1)); done; echo done > out.txt`,
    ];
    const inputs = await Promise.all(
      workspaces.map((ws, i) =>
        startRun(t.client, {
          spec: ProjectSpecSchema.parse({
            project: { name: `failover ${i}` },
            // Killed turns are retried ~10 s after their last beat instead of 30 s (test/harness/specs).
            constraints: { agent_heartbeat_timeout_s: KILL_TEST_HEARTBEAT_S },
            phases: [
              {
                name: 'development',
                agents: [{ role: 'developer', backend: 'script', command: writer }],
                artifacts: [{ pattern: 'out.txt' }],
              },
            ],
          }),
          workspace: ws,
          outputsDir: t.config.outputsDir,
          taskQueue: t.taskQueue,
        }),
      ),
    );
    const writesOf = (ws: string) => {
      const f = path.join(ws, 'writes.log');
      return fs.existsSync(f)
        ? fs
            .readFileSync(f, 'utf8')
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => l.split(' ').map(Number) as [number, number])
        : [];
    };
    // All four agents are running on worker 1.
    await waitFor(() => workspaces.every((ws) => writesOf(ws).length > 0), 'four agents writing', 240_000);
    const orphans = inputs.map((input) => `${input.runId}/development-developer`);
    const w2 = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
    workers.push(w2);
    await waitUntilPolling(t, w2.pid!);

    // Worker 1's attempts, by host pid: every process carrying an orphan's mark right now.
    const orphanPids = (await Promise.all(orphans.map((m) => findMarkedProcesses(m)))).flat();
    expect(orphanPids.length).toBeGreaterThanOrEqual(AGENTS);
    w1.kill('SIGKILL');
    const killedAt = Date.now();
    await new Promise((r) => w1.once('exit', r));
    // Measured: from the kill until that process is gone (its watchdog, or the retry, ended it).
    const endedAfter = await Promise.all(
      orphanPids.map((pid) =>
        waitFor(() => (isAlive(pid) ? undefined : Date.now() - killedAt), `orphan ${pid} ended`, 60_000),
      ),
    );
    console.log(
      `failover: ${orphanPids.length} orphan processes of ${AGENTS} agents ended ${Math.min(...endedAfter)}–${Math.max(...endedAfter)} ms after the kill`,
    );
    for (const ms of endedAfter) expect(ms).toBeLessThan(20_000);
    // The retries on worker 2 may finish now.
    fs.writeFileSync(go, '');

    const summaries = (await Promise.all(
      inputs.map((input) => t.client.workflow.getHandle(input.runId).result()),
    )) as ProjectSummary[];
    expect(summaries.map((s) => s.state)).toEqual(inputs.map(() => 'completed'));

    // No two attempts wrote at once: per workspace, each writer's lines form one block, and the blocks
    // do not overlap in time.
    for (const ws of workspaces) {
      const lines = writesOf(ws);
      const spans = new Map<number, { first: number; last: number }>();
      for (const [id, at] of lines) {
        const s = spans.get(id);
        if (s) s.last = at;
        else spans.set(id, { first: at, last: at });
      }
      expect(spans.size).toBeGreaterThanOrEqual(2); // the killed attempt and the retry
      const ordered = [...spans.values()].sort((a, b) => a.first - b.first);
      for (let i = 1; i < ordered.length; i++)
        expect(ordered[i]!.first).toBeGreaterThan(ordered[i - 1]!.last);
      expect(fs.readFileSync(path.join(ws, 'out.txt'), 'utf8')).toBe('done\n');
    }
    for (const mark of orphans) expect(await findMarkedProcesses(mark)).toEqual([]);
    for (const ws of workspaces)
      await waitFor(() => processesIn(ws).length === 0, `nothing left in ${ws}`, 15_000);
  }, 900_000);
});
