/**
 * A team moves when its host is lost (README "Many hosts", patch `team-host-move`): two workers simulate
 * two hosts (each its own host id and its own disk at the same workspace path, a mount namespace of its
 * own, as test/cluster does), both reaching one checkpoint store. A team placed on host A checkpoints its
 * workspace there; A is SIGKILLed while the manager's turn runs and stays dead past a short move time; the
 * team moves to B, whose workspace is then its last checkpoint file for file, and completes there.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import type { TeamStatus } from '../../src/shared/team';
import { startTeam, teamStatus } from '../../src/teams';
import { Gates, treeHash, waitFor } from '../harness/gates';
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

/** The team's checkpoints in the store: id → commit. */
function storedCheckpoints(store: string, runId: string): Map<string, string> {
  const repo = path.join(store, `${runId}.git`);
  if (!fs.existsSync(path.join(repo, 'HEAD'))) return new Map();
  const out = execFileSync(
    'git',
    [`--git-dir=${repo}`, 'for-each-ref', '--format=%(refname:strip=2) %(objectname)', 'refs/checkpoints'],
    { encoding: 'utf8' },
  );
  return new Map(
    out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ') as [string, string]),
  );
}

/** A commit of the store, unpacked into a folder of its own. */
function unpack(store: string, runId: string, commit: string): string {
  const dir = tempDir('orch-team-move-cp-');
  execFileSync('sh', [
    '-c',
    'git --git-dir="$1" archive "$2" | tar -x -C "$3"',
    'x',
    path.join(store, `${runId}.git`),
    commit,
    dir,
  ]);
  return dir;
}

describe('a team whose host is lost', () => {
  let t: TestEnv;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    await stopWorkers(workers);
    await t.close();
  });

  it('moves to another host from its last checkpoint and completes there', async () => {
    const shared = tempDir('orch-team-move-ws-');
    const disks = { a: tempDir('orch-team-move-a-'), b: tempDir('orch-team-move-b-') };
    const store = tempDir('orch-team-move-store-');
    const MOVE_AFTER_S = 4;
    const workspace = path.join(shared, 'ws');
    fs.mkdirSync(workspace);
    fs.mkdirSync(path.join(disks.a, 'ws'));
    fs.writeFileSync(path.join(disks.a, 'ws', 'in.txt'), 'input\n');
    const control = new Gates('team-move').dir;
    const waiting = path.join(control, 'manager-waiting');
    const proceed = path.join(control, 'manager-proceed');
    const host = (id: 'a' | 'b') =>
      spawnWorkerProcess(
        t,
        {
          LOG_LEVEL: 'error',
          ORCHESTRATOR_HOST_ID: `host-${id}`,
          ORCHESTRATOR_CHECKPOINT_STORE: store,
          ORCHESTRATOR_HOST_MOVE_AFTER_S: String(MOVE_AFTER_S),
        },
        onDisk(disks[id], shared),
      );
    const a = host('a');
    workers.push(a);
    await waitUntilPolling(t, a.pid!);
    const input = await startTeam(t.client, {
      goal: 'Survive a lost host',
      workspace,
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(undefined, { maxTeamSize: 5 }),
      backend: 'script',
      taskQueue: t.taskQueue,
      instructions: {
        architect: 'cp in.txt arch.txt',
        // The manager's turn waits (on A, then again on B after the move) until the test lets it go.
        manager: `touch '${waiting}'; while [ ! -f '${proceed}' ]; do sleep 0.05; done; echo managed > managed.txt`,
      },
    });
    const handle = t.client.workflow.getHandle(input.runId);
    await waitFor(() => fs.existsSync(waiting), 'the manager waits', 240_000);
    expect((await teamStatus(t.client, input.runId)).host).toBe('host-a');
    // The architect ended and its archived directory is in a checkpoint (the manager's round has not
    // ended: nothing later is asked for, though one asked before may still land).
    const trees = new Map<string, Record<string, string>>();
    const lastCheckpoint = () => {
      const top = [...storedCheckpoints(store, input.runId)]
        .sort((x, y) => Number(x[0].slice(2)) - Number(y[0].slice(2)))
        .at(-1);
      if (!top) return undefined;
      const [id, commit] = top;
      if (!trees.has(commit)) trees.set(commit, treeHash(unpack(store, input.runId, commit)));
      return { id, commit, tree: trees.get(commit)! };
    };
    await waitFor(
      () => lastCheckpoint()?.tree['.team/architect-1-completed/session.json'],
      "the architect's end checkpointed",
      240_000,
    );

    const b = host('b');
    workers.push(b);
    await waitUntilPolling(t, b.pid!);
    fs.rmSync(waiting);
    a.kill('SIGKILL');
    await new Promise((r) => a.once('exit', r));
    const killedAt = Date.now();
    // What a move can restore: the last checkpoint A pushed before it died.
    const last = lastCheckpoint()!;
    expect(last.tree['arch.txt']).toBeDefined();
    expect(last.tree['.team/manager-1/tasks.md']).toBeDefined();
    expect(last.tree['managed.txt']).toBeUndefined();
    // A stays dead: the manager's turn times out its heartbeat, its retry waits on A's queue past the move
    // time, and the team moves to B, where the manager's turn runs again (and waits again).
    await waitFor(
      async () =>
        ((await teamStatus(t.client, input.runId)).host === 'host-b' && fs.existsSync(waiting)) || undefined,
      'the team moved to B and its manager runs there',
      240_000,
    );
    expect(Date.now() - killedAt, 'the team waited out the move time').toBeGreaterThanOrEqual(
      MOVE_AFTER_S * 1000,
    );
    // B's workspace is the last checkpoint, file for file (the manager's directory prepared again there
    // changes nothing: it was prepared before that checkpoint).
    expect(treeHash(path.join(disks.b, 'ws'))).toEqual(last.tree);
    const audit = () =>
      fs
        .readFileSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { kind: string; details: Record<string, unknown> });

    fs.writeFileSync(proceed, '');
    const final = (await handle.result()) as TeamStatus;
    expect(final.state).toBe('completed');
    expect(final.host).toBe('host-b');
    expect(final.agents.map((x) => [x.id, x.state]).sort()).toEqual([
      ['architect-1', 'completed'],
      ['manager-1', 'completed'],
    ]);
    const ws = path.join(disks.b, 'ws');
    expect(fs.readFileSync(path.join(ws, 'managed.txt'), 'utf8')).toBe('managed\n');
    expect(fs.readFileSync(path.join(ws, 'arch.txt'), 'utf8')).toBe('input\n');
    expect(fs.existsSync(path.join(ws, '.team', 'manager-1-completed'))).toBe(true);
    expect(fs.existsSync(path.join(ws, '.team', 'architect-1-completed'))).toBe(true);
    // A's disk never saw what the team did after the move.
    expect(fs.existsSync(path.join(disks.a, 'ws', '.team', 'manager-1-completed'))).toBe(false);

    const hostEvents = audit()
      .filter((e) => e.kind === 'host')
      .map((e) => [e.details.event, e.details.host ?? e.details.from, e.details.to, e.details.checkpoint]);
    expect(hostEvents).toEqual([
      ['placed', 'host-a', undefined, undefined],
      ['moved', 'host-a', 'host-b', last.id],
    ]);

    // The manager's turn ran on A, then (retried after the move) on B's agent queue, by B's worker; its
    // archive too.
    const hostQueue = (id: string) => `${t.taskQueue}-host-${id}`;
    const managerEvents =
      (await t.client.workflow.getHandle(`${input.runId}/manager-1`).fetchHistory()).events ?? [];
    const manager = activityStarts(managerEvents);
    // (A's attempt has no started event: an activity's retries record only the last attempt's, and its
    // last attempt was never taken.)
    const scheduledTurns = managerEvents
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((x) => x?.activityType?.name === 'scriptTurn')
      .map((x) => x?.taskQueue?.name);
    expect(scheduledTurns).toEqual([`${hostQueue('host-a')}-agents`, `${hostQueue('host-b')}-agents`]);
    const turns = manager.filter((s) => s.type === 'scriptTurn');
    expect(turns.map((s) => s.queue)).toEqual([`${hostQueue('host-b')}-agents`]);
    expect(turns.at(-1)?.identity).toMatch(new RegExp(`^${b.pid}@`));
    const archive = manager.filter((s) => s.type === 'archiveTeamAgent');
    expect(archive.map((s) => s.queue)).toEqual([hostQueue('host-b')]);
    // The team's moves: one adoptWorkspace, on the shared queue, answered by B.
    const team = activityStarts((await handle.fetchHistory()).events ?? []);
    const adopts = team.filter((s) => s.type === 'adoptWorkspace');
    expect(adopts.map((s) => s.queue)).toEqual([t.taskQueue]);
    expect(adopts[0]?.identity).toMatch(new RegExp(`^${b.pid}@`));
  }, 600_000);
});
