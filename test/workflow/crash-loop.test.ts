/**
 * A crash loop on the real dev server: 10 runs of 3–4 script phases (two of them rolled back, three
 * with an agent that fails twice before it succeeds) on one worker process that is SIGKILLed several
 * times: at a random moment, while git holds the shadow repository's index.lock (a checkpoint of p1's
 * 300 files, or a restore, in flight), while a rollback's restore runs, and during an agent's third attempt.
 *
 * Every run completes; no checkpointed phase runs again after its checkpoint; every file is there with
 * its content; no process is left; after each restart every unfinished run makes progress within 30 s
 * of the worker polling again.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun } from '../../src/runs';
import { phaseResultsQuery, rollbackUpdate, statusQuery } from '../../src/shared/messages';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import type { ProjectSummary } from '../../workflows/project';
import { Gates, waitFor } from '../harness/gates';
import { processesIn } from '../harness/processes';
import { KILL_TEST_HEARTBEAT_S } from '../harness/specs';
import {
  createTestEnv,
  spawnWorkerProcess,
  tempDir,
  waitUntilPolling,
  type TestEnv,
} from '../harness/temporal';

const RUNS = 10;
const FILES_PER_PHASE = 30;
/**
 * p1 writes more files than a checkpoint stages in-process (activities/workspace/stage HASH_HERE_MAX), so
 * its checkpoint runs git and holds index.lock: the moment this test kills the worker "mid-checkpoint".
 * The other phases' checkpoints take the in-process path, which the random kills may hit.
 */
const FILES_IN_P1 = 300;
const filesIn = (phase: string) => (phase === 'p1' ? FILES_IN_P1 : FILES_PER_PHASE);

interface RunPlan {
  index: number;
  phases: string[];
  /** The phase whose agent fails twice and succeeds on its third attempt. */
  thirdAttempt?: string;
  /** Rolled back to CP1 while its last phase runs. */
  rollback: boolean;
  /**
   * Its p1 waits for the test's go: its checkpoint (git holding index.lock) then comes when the test is
   * ready to kill, not in the first seconds of the run, before the first kill may come (a fast machine
   * checkpointed every other run's p1 by then, and the kill "mid-checkpoint" never happened).
   */
  gatedCheckpoint?: boolean;
}

/** The run whose p1 checkpoint the test releases (no third attempt, no rollback). */
const GATED_RUN = 2;

function plan(index: number): RunPlan {
  const phases = index % 2 === 0 ? ['p1', 'p2', 'p3', 'p4'] : ['p1', 'p2', 'p3'];
  return {
    index,
    phases,
    ...(index % 3 === 0 ? { thirdAttempt: 'p2' } : {}),
    rollback: index === 1 || index === 4,
    ...(index === GATED_RUN ? { gatedCheckpoint: true } : {}),
  };
}

/** The files a phase leaves in the workspace, with their content. */
function phaseFiles(phase: string): Record<string, string> {
  const out: Record<string, string> = { [`${phase}.txt`]: `${phase} done\n` };
  for (let i = 0; i < filesIn(phase); i++) out[`${phase}/f${i}.txt`] = `${phase} ${i}\n`;
  return out;
}

function script(p: RunPlan, phase: string, logDir: string): string[] {
  const log = path.join(logDir, `run${p.index}`);
  const starts = `echo "${phase} $(date +%s%3N)" >> '${log}.starts'`;
  const work = [
    `mkdir -p ${phase}`,
    `i=0; while [ $i -lt ${filesIn(phase)} ]; do echo "${phase} $i" > ${phase}/f$i.txt; i=$((i+1)); done`,
    'sleep 1',
    `echo "${phase} done" > ${phase}.txt`,
  ].join('; ');
  let body = work;
  if (p.thirdAttempt === phase) {
    // Fails on its first two invocations; the third sleeps long enough to be killed in the middle.
    const count = `${log}.${phase}.count`;
    body = `n=$(( $(cat '${count}' 2>/dev/null || echo 0) + 1 )); echo $n > '${count}'; [ $n -lt 3 ] && { echo "failing on purpose ($n)"; exit 1; }; [ $n -eq 3 ] && sleep 4; ${work}`;
  } else if (p.gatedCheckpoint && phase === 'p1') {
    body = `while [ ! -f '${log}.go' ]; do sleep 0.05; done; ${work}`;
  } else if (p.rollback && phase === p.phases.at(-1)) {
    // The first time, waits (forever) for the rollback that the test sends when it sees the marker.
    const marker = `${log}.waiting`;
    body = `if [ ! -f '${marker}' ]; then touch '${marker}'; while :; do sleep 0.1; done; fi; ${work}`;
  }
  return ['sh', '-c', `${starts}; ${body}`];
}

function specFor(p: RunPlan, logDir: string): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name: `crash loop ${p.index}` },
    // Killed turns are retried ~10 s after their last beat instead of 30 s (test/harness/specs).
    constraints: { agent_heartbeat_timeout_s: KILL_TEST_HEARTBEAT_S },
    phases: p.phases.map((phase) => ({
      name: phase,
      agents: [
        {
          role: 'worker',
          backend: 'script',
          command: script(p, phase, logDir),
          ...(p.thirdAttempt === phase ? { max_attempts: 3 } : {}),
        },
      ],
      artifacts: [{ pattern: `${phase}.txt` }],
    })),
  });
}

/** Every file under `dir` except the orchestrator's own state, with content. */
function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (r === '.orchestrator') continue;
      if (ent.isDirectory()) walk(r);
      else out[r] = fs.readFileSync(path.join(dir, r), 'utf8');
    }
  };
  walk('');
  return out;
}

function starts(logDir: string, index: number): { phase: string; at: number }[] {
  const file = path.join(logDir, `run${index}.starts`);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [phase, at] = l.split(' ');
      return { phase: phase!, at: Number(at) };
    });
}

/** What a run (and its agents) did between two moments, from the server's histories: for a failure message. */
async function timeline(t: TestEnv, runId: string, from: number, to: number): Promise<string> {
  const lines: string[] = [];
  const ids = [runId];
  try {
    for await (const wf of t.client.workflow.list({ query: `WorkflowId STARTS_WITH '${runId}/'` }))
      ids.push(wf.workflowId);
  } catch (err) {
    lines.push(`(agents not listed: ${String(err)})`);
  }
  for (const id of ids) {
    const history = await t.client.workflow.getHandle(id).fetchHistory();
    for (const e of history.events ?? []) {
      const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
      if (at < from || at > to) continue;
      const attrs = Object.entries(e).find(([k, v]) => k.endsWith('Attributes') && v);
      const a = attrs?.[1] as
        { activityType?: { name?: string }; attempt?: number; failure?: { message?: string } } | undefined;
      lines.push(
        `${at - from} ms ${id} ${attrs?.[0]?.replace(/EventAttributes$/, '') ?? e.eventType} ${a?.activityType?.name ?? ''} ${a?.attempt ?? ''} ${a?.failure?.message?.slice(0, 120) ?? ''}`,
      );
    }
  }
  return lines.sort((a, b) => parseInt(a) - parseInt(b)).join('\n');
}

/** When the server shows a run (or one of its agents) moving: workflow tasks completed, activities started. */
async function progressTimes(t: TestEnv, runId: string): Promise<number[]> {
  const ids = [runId];
  for await (const wf of t.client.workflow.list({ query: `WorkflowId STARTS_WITH '${runId}/'` }))
    ids.push(wf.workflowId);
  const out: number[] = [];
  for (const id of ids) {
    const history = await t.client.workflow.getHandle(id).fetchHistory();
    for (const e of history.events ?? []) {
      if (!e.workflowTaskCompletedEventAttributes && !e.activityTaskStartedEventAttributes) continue;
      out.push(Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6));
    }
  }
  return out;
}

describe('crash loop', () => {
  let t: TestEnv;
  let worker: ChildProcess | undefined;
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => worker!.once('exit', r));
    }
    await t.close();
  });

  it('10 runs survive repeated worker SIGKILLs: complete, no phase reruns after its checkpoint, no file lost, no process left', async () => {
    // The scripts' own records (starts, attempt counts, markers) live where the sandbox lets them write.
    const logDir = new Gates('crash-log').dir;
    const plans = Array.from({ length: RUNS }, (_, i) => plan(i));
    const workspaces = plans.map(() => tempDir('orch-crash-ws-'));
    const lockOf = (i: number) => path.join(workspaces[i]!, '.orchestrator', 'shadow.git', 'index.lock');
    const goFile = path.join(logDir, `run${GATED_RUN}.go`);

    const spawn = async () => {
      worker = spawnWorkerProcess(t, { LOG_LEVEL: 'error' });
      return waitUntilPolling(t, worker.pid!);
    };
    const kill = async (why: string) => {
      const w = worker!;
      w.kill('SIGKILL');
      await new Promise((r) => w.once('exit', r));
      kills.push({ why, at: Date.now() });
    };
    const kills: { why: string; at: number }[] = [];
    const backAt: number[] = [await spawn()];

    const inputs = await Promise.all(
      plans.map((p, i) =>
        startRun(t.client, {
          spec: specFor(p, logDir),
          workspace: workspaces[i]!,
          outputsDir: t.config.outputsDir,
          taskQueue: t.taskQueue,
        }),
      ),
    );
    const finishedAt = new Map<number, number>();
    const results = inputs.map((input, i) =>
      t.client.workflow
        .getHandle(input.runId)
        .result()
        .then((r) => {
          finishedAt.set(i, Date.now());
          return r as ProjectSummary;
        }),
    );
    const allDone = Promise.allSettled(results);
    let done = false;
    void allDone.then(() => (done = true));

    // Rollbacks: sent as soon as a rolled-back run's last phase waits; kills of its restore follow.
    const rollbackSent = new Map<number, number>();
    const sendRollbacks = setInterval(() => {
      for (const p of plans) {
        if (!p.rollback || rollbackSent.has(p.index)) continue;
        if (!fs.existsSync(path.join(logDir, `run${p.index}.waiting`))) continue;
        rollbackSent.set(p.index, Date.now());
        void t.client.workflow
          .getHandle(inputs[p.index]!.runId)
          .executeUpdate(rollbackUpdate, { args: [{ checkpoint: 'CP1', reason: 'crash loop' }] })
          .catch(() => undefined);
      }
    }, 50);

    // Kill targets, in the order they come up; a kill waits until the worker has been back 5 s.
    const pending = new Set(['random', 'third', 'restore', 'checkpoint']);
    const third = plans.filter((p) => p.thirdAttempt);
    let thirdKilled: number | undefined;
    try {
      while (pending.size > 0 && !done) {
        const earliest = backAt.at(-1)! + 5_000;
        const randomAt = earliest + Math.random() * 3_000;
        const target = await waitFor(
          async () => {
            // Every run ended before this kill came up (a short moment such as a restore can be missed):
            // stop looking at once rather than poll out the whole timeout.
            if (done) return 'none' as const;
            if (Date.now() < earliest) return undefined;
            if (pending.has('third')) {
              // The script's third invocation (it sleeps 4 s) that is also the agent's third attempt: a
              // crash that took an earlier invocation makes the third invocation a retry of attempt 2.
              for (const p of third) {
                const count = path.join(logDir, `run${p.index}.${p.thirdAttempt}.count`);
                if (!fs.existsSync(count) || fs.readFileSync(count, 'utf8').trim() !== '3') continue;
                // A script agent runs as an activity of the run (workflows/script-agent): its row in
                // the run's status says which attempt is running.
                const status = await t.client.workflow
                  .getHandle(inputs[p.index]!.runId)
                  .query(statusQuery)
                  .catch(() => undefined);
                const row = status?.agents.find((a) => a.phase === p.thirdAttempt);
                if (row?.attempt === 3) {
                  thirdKilled = p.index;
                  return 'third';
                }
              }
            }
            if (pending.has('restore')) {
              for (const i of rollbackSent.keys()) if (fs.existsSync(lockOf(i))) return 'restore';
            }
            if (pending.has('checkpoint')) {
              // Released after the random kill, which would otherwise often fall before it: the gated run
              // cannot end before it is released, so a run is still going when this kill comes up.
              if (!pending.has('random') && !fs.existsSync(goFile)) fs.writeFileSync(goFile, '');
              for (let i = 0; i < RUNS; i++)
                if (!rollbackSent.has(i) && fs.existsSync(lockOf(i))) return 'checkpoint';
            }
            if (pending.has('random') && Date.now() >= randomAt) return 'random';
            return undefined;
          },
          'a moment to kill the worker',
          240_000,
          // index.lock is held for tens of ms on a fast machine.
          10,
        ).catch(() => 'none' as const);
        if (target === 'none' || done) break;
        await kill(target);
        pending.delete(target);
        backAt.push(await spawn());
      }
      // The gated run finishes whatever ended the loop.
      if (!fs.existsSync(goFile)) fs.writeFileSync(goFile, '');
      const summaries = await Promise.all(results);
      // ---- all runs complete ----
      expect(summaries.map((s) => s.state)).toEqual(plans.map(() => 'completed'));
      expect(kills.map((k) => k.why)).toEqual(expect.arrayContaining(['random', 'third', 'checkpoint']));
      expect(kills.length).toBeGreaterThanOrEqual(3);
      // A rolled-back run's rollback happened, and the agents that failed twice took three attempts.
      for (const p of plans.filter((x) => x.rollback))
        expect(summaries[p.index]!.rollbacks.length).toBeGreaterThan(0);
      // Crashes never use an agent's attempts: each agent attempt is one scriptTurn activity, however
      // many times a crash made Temporal retry it; the agent killed in its third attempt still completed
      // on its last allowed attempt although its script ran at least four times.
      for (const p of third) {
        const runId = inputs[p.index]!.runId;
        const phases = await t.client.workflow.getHandle(runId).query(phaseResultsQuery);
        const agent = phases
          .find((r) => r.phase === p.thirdAttempt && r.status === 'completed')
          ?.agents.at(-1);
        const history = await t.client.workflow.getHandle(runId).fetchHistory();
        const turns = (history.events ?? []).filter((e) => {
          const a = e.activityTaskScheduledEventAttributes;
          if (a?.activityType?.name !== 'scriptTurn') return false;
          const data = a.input?.payloads?.[0]?.data;
          const input = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { agentId?: string }) : {};
          return input.agentId === `${p.thirdAttempt}-worker`;
        }).length;
        const invocations = Number(
          fs.readFileSync(path.join(logDir, `run${p.index}.${p.thirdAttempt}.count`), 'utf8'),
        );
        expect(agent, `run ${p.index}`).toMatchObject({ status: 'completed', attempts: turns });
        expect(invocations, `run ${p.index}`).toBeGreaterThanOrEqual(turns);
        if (p.index === thirdKilled) {
          expect(turns).toBe(3);
          expect(invocations).toBeGreaterThanOrEqual(4);
        }
      }

      for (const [i, p] of plans.entries()) {
        const s = summaries[i]!;
        // ---- no checkpointed phase reruns: no agent of a phase starts after its final checkpoint ----
        for (const phase of p.phases) {
          const cp = s.checkpoints.filter((c) => c.phase === phase && !c.rolledBack).at(-1);
          expect(cp, `run ${i} phase ${phase} checkpoint`).toBeDefined();
          const after = starts(logDir, i).filter(
            (x) => x.phase === phase && x.at > Date.parse(cp!.createdAt),
          );
          expect(after, `run ${i}: ${phase} started after ${cp!.id}`).toEqual([]);
        }
        // ---- no file is lost ----
        const expected = Object.assign({}, ...p.phases.map(phaseFiles)) as Record<string, string>;
        expect(readTree(workspaces[i]!)).toEqual(expected);
      }

      // ---- no run waits more than 30 s after its worker comes back ----
      // A run waits until the server shows it moving again (a workflow task completed, an activity
      // started, a script started), it finishes, or the worker is killed again (nothing can move then).
      const moves = await Promise.all(
        inputs.map(async (input, i) => [
          ...(await progressTimes(t, input.runId)),
          ...starts(logDir, i).map((x) => x.at),
        ]),
      );
      const waits: { back: number; run: number; ms: number }[] = [];
      for (const [k, back] of backAt.slice(1).entries()) {
        const nextKill = kills[k + 1]?.at ?? Infinity;
        for (let i = 0; i < RUNS; i++) {
          const finished = finishedAt.get(i) ?? Infinity;
          if (finished <= back) continue;
          const next = Math.min(finished, nextKill, ...moves[i]!.filter((at) => at > back));
          waits.push({ back, run: i, ms: next - back });
        }
      }
      const worst = waits.reduce((a, b) => (b.ms > a.ms ? b : a));
      console.log(
        `crash loop: ${kills.length} kills (${kills.map((k) => k.why).join(', ')}), longest wait after a restart ${worst.ms} ms`,
      );
      expect(
        worst.ms,
        `run ${worst.run} waited ${worst.ms} ms after the worker came back:\n${await timeline(
          t,
          inputs[worst.run]!.runId,
          worst.back - 20_000,
          worst.back + worst.ms,
        )}`,
      ).toBeLessThan(30_000);

      // ---- no process is left ----
      for (const ws of workspaces)
        await waitFor(() => processesIn(ws).length === 0, `no process left in ${ws}`, 15_000);
    } finally {
      clearInterval(sendRollbacks);
    }
  }, 1_200_000);
});
