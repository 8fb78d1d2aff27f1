/**
 * A team on a host (README "Many hosts"): two workers simulate two hosts (each its own host id and its own
 * disk at the same workspace path, a mount namespace of its own, as test/cluster does). A team placed on
 * host A keeps every step that touches its workspace (each agent's directory operations and its turns) on
 * A's queues, run by A's worker, even for an agent requested after B joined and while B takes workflow
 * tasks; B's disk never sees the team.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import type { TeamStatus } from '../../src/shared/team';
import { startTeam, teamStatus } from '../../src/teams';
import { Gates, waitFor } from '../harness/gates';
import {
  createTestEnv,
  onDisk,
  spawnWorkerProcess,
  stopWorkers,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Each activity of a history that started: its type, the queue it was scheduled on, who started it. */
function activityStarts(events: HistoryEvent[]): { type: string; queue: string; identity: string }[] {
  const scheduled = new Map<string, { type: string; queue: string }>();
  const out: { type: string; queue: string; identity: string }[] = [];
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s)
      scheduled.set(String(e.eventId), { type: s.activityType?.name ?? '', queue: s.taskQueue?.name ?? '' });
    const st = e.activityTaskStartedEventAttributes;
    const of = st && scheduled.get(String(st.scheduledEventId));
    if (of) out.push({ ...of, identity: st.identity ?? '' });
  }
  return out;
}

/** The local activities a history recorded (markers), by type. */
function localActivities(events: HistoryEvent[]): number {
  return events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length;
}

describe('a team on a host', () => {
  let t: TestEnv;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    await stopWorkers(workers);
    await t.close();
  });

  it("claims a host and sends every workspace step of its agents to that host's worker", async () => {
    const shared = tempDir('orch-team-host-ws-');
    const disks = { a: tempDir('orch-team-host-a-'), b: tempDir('orch-team-host-b-') };
    const workspace = path.join(shared, 'ws');
    fs.mkdirSync(workspace);
    fs.mkdirSync(path.join(disks.a, 'ws'));
    fs.writeFileSync(path.join(disks.a, 'ws', 'eng.sh'), 'echo "$ORCHESTRATOR_AGENT_ID" > eng-done.txt\n');
    const control = new Gates('team-host').dir;
    const waiting = path.join(control, 'manager-waiting');
    const proceed = path.join(control, 'manager-proceed');
    const host = (id: 'a' | 'b') =>
      spawnWorkerProcess(
        t,
        { LOG_LEVEL: 'error', ORCHESTRATOR_HOST_ID: `host-${id}` },
        onDisk(disks[id], shared),
      );
    const a = host('a');
    workers.push(a);
    await waitUntilPolling(t, a.pid!);
    const input = await startTeam(t.client, {
      goal: 'Stay on one host',
      workspace,
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(undefined, { maxTeamSize: 5 }),
      backend: 'script',
      taskQueue: t.taskQueue,
      instructions: {
        // The manager waits until B polls too, then asks for an engineer: the engineer's workflow tasks
        // may run on either worker, its workspace steps only on A.
        manager:
          `touch '${waiting}'; while [ ! -f '${proceed}' ]; do sleep 0.05; done; ` +
          'orchestrator team request --role software-engineer --name eng-1 --instructions-file eng.sh',
      },
    });
    await waitFor(() => fs.existsSync(waiting), 'the manager waits', 240_000);
    expect((await teamStatus(t.client, input.runId)).host).toBe('host-a');
    const b = host('b');
    workers.push(b);
    await waitUntilPolling(t, b.pid!);
    fs.writeFileSync(proceed, '');

    const final = (await t.client.workflow.getHandle(input.runId).result()) as TeamStatus;
    expect(final.state).toBe('completed');
    expect(final.host).toBe('host-a');
    expect(final.agents.map((x) => x.id).sort()).toEqual(['architect-1', 'manager-1', 'software-engineer-1']);
    expect(fs.readFileSync(path.join(disks.a, 'ws', 'eng-done.txt'), 'utf8')).toBe('software-engineer-1\n');
    expect(fs.existsSync(path.join(disks.a, 'ws', '.team', 'software-engineer-1-completed'))).toBe(true);
    // B's disk never saw the team.
    expect(fs.readdirSync(disks.b)).toEqual([]);

    // The histories: every step that touches the workspace went to A's queues and ran on A's worker.
    const hostQueue = `${t.taskQueue}-host-host-a`;
    const touching = ['prepareTeamAgent', 'readTeamTasks', 'markTeamTasks', 'archiveTeamAgent', 'scriptTurn'];
    const seen = new Set<string>();
    for (const agent of final.agents) {
      const events =
        (await t.client.workflow.getHandle(`${input.runId}/${agent.id}`).fetchHistory()).events ?? [];
      expect(localActivities(events), agent.id).toBe(0);
      for (const s of activityStarts(events).filter((x) => touching.includes(x.type))) {
        seen.add(s.type);
        expect([hostQueue, `${hostQueue}-agents`], `${agent.id} ${s.type}`).toContain(s.queue);
        expect(s.identity, `${agent.id} ${s.type}`).toMatch(new RegExp(`^${a.pid}@`));
      }
    }
    expect([...seen].sort()).toEqual(['archiveTeamAgent', 'prepareTeamAgent', 'readTeamTasks', 'scriptTurn']);
    // The claim, on the shared queue, is on record.
    const audit = fs
      .readFileSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; details: Record<string, unknown> });
    expect(audit.filter((e) => e.kind === 'host').map((e) => [e.details.event, e.details.host])).toEqual([
      ['placed', 'host-a'],
    ]);
  }, 600_000);
});
