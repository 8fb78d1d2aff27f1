/**
 * `npm run bench:fleet`: what one worker process holds and how fast agents start with many concurrent
 * runs, and how fast a rollback ends a running agent.
 *
 * - **Fleet**: for each N (default 10, 100, 200, 400; `BENCH_FLEET_NS=10,100`), a fresh `orchestrator
 *   worker` process (the production path: bin/orchestrator.js, prebuilt bundle) and N runs started at once,
 *   each one phase with one script agent, so that only orchestration is measured. Each agent process
 *   writes its own start time and then holds until every agent of the round has started, so all N runs are
 *   concurrent. Printed: the worker's peak RSS (VmHWM), its RSS with all N held, agent start latency (the
 *   process's own start time − the moment its run was started) p50/p99, failures. The agent-turn room is N
 *   (script agents cost nothing; the machine-sized default would make agents wait for slots instead).
 *   The per-run RSS is printed against the first N's, measured in the same run.
 *   `BENCH_FLEET_RATE=<runs per second>` paces the starts instead of starting all N at once (the round
 *   still holds N concurrent runs): the start latency of a worker that holds N runs, not of a burst.
 *   The worker runs with our image's Node options ({@link workerNodeArgs}).
 * - **Rollback**: a run whose second phase's agent runs; `rollbackToCheckpoint` to CP1, repeated. Printed:
 *   update → the agent process ended (cancellation noticed) and update → the phase's agent started again,
 *   p50/max, beside the turns' heartbeat interval (what noticing took before the nudge).
 *
 * bench/scale.ts calls {@link measureFleet} and {@link measureRollback} for its table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { TURN_HEARTBEAT_MS } from '../activities/turn-heartbeat';
import { buildWorkflowBundle, ensureCli, workflowBundleStaleness } from '../scripts/build-lib.mjs';
import { ensureTemporalCli, startDevServer } from '../src/devserver';
import { rollbackRun, startRun } from '../src/runs';
import { checkpointsQuery } from '../src/shared/messages';
import { ProjectSpecSchema } from '../src/shared/spec';
import { median, percentile } from './harness';

const ROOT = path.resolve(import.meta.dirname, '..');

/** One N of the fleet table. */
export interface FleetRow {
  runs: number;
  /** Worker RSS before any run (after start-up), MiB. */
  idleRssMiB: number;
  /** Worker RSS with all N agents running, MiB. */
  heldRssMiB: number;
  /** Peak worker RSS over the round (VmHWM), MiB. */
  peakRssMiB: number;
  /** Peak RSS up to the moment all N were held (before the release: N runs ending at once). */
  heldPeakRssMiB?: number;
  startP50Ms: number;
  startP99Ms: number;
  /** Runs started per second, when the round was paced (see {@link FleetOptions.ratePerS}). */
  ratePerS?: number;
  failures: number;
  /**
   * Agent attempts beyond each run's first: a turn the server gave up on (a heartbeat timeout: a slow or
   * failing server, a stalled worker) is killed and started again. 0 on a healthy round.
   */
  retries: number;
  /** The Temporal server's frontend requests over the round, and how many were turn heartbeats. */
  serverRequests?: number;
  serverHeartbeats?: number;
  /** Requests the server's frontend failed over the round (its store falling behind). */
  serverErrors?: number;
  wallMs: number;
}

/** Where the bench talks to Temporal, and where it keeps workspaces and outputs. */
export interface FleetTarget {
  address: string;
  dir: string;
  /** The server's Prometheus metrics, when known: the round's request counts are printed from them. */
  metricsUrl?: string;
}

/** The frontend's request and error counts by operation, summed (undefined when unreadable). */
async function serverCounts(
  metricsUrl: string | undefined,
): Promise<{ requests: number; heartbeats: number; errors: number } | undefined> {
  if (!metricsUrl) return undefined;
  try {
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(30_000) })).text();
    const out = { requests: 0, heartbeats: 0, errors: 0 };
    for (const m of text.matchAll(/^service_(requests|errors)\{([^}]*)\} ([0-9.e+]+)$/gm)) {
      if (!m[2]!.includes('service_name="frontend"')) continue;
      const n = Number(m[3]);
      if (m[1] === 'errors') out.errors += n;
      else {
        out.requests += n;
        if (m[2]!.includes('operation="RecordActivityTaskHeartbeat"')) out.heartbeats += n;
      }
    }
    return out;
  } catch {
    return undefined;
  }
}

/** Options for {@link measureFleet}. */
export interface FleetOptions {
  ns: number[];
  /** Extra worker environment (e.g. the baseline's settings). */
  env?: Record<string, string>;
  /** Called with each row as it is measured. */
  onRow?: (row: FleetRow) => void;
  /**
   * Runs started per second (`BENCH_FLEET_RATE`); all at once when absent. Starting all N at once measures
   * a burst: on two cores each run's start costs CPU, so the last waits for all the others. At a steady
   * rate the round still reaches N concurrent runs (every agent holds until all have started), and the
   * latency says whether a worker holding N runs starts a new one's agent promptly.
   */
  ratePerS?: number;
}

const nowMs = () => performance.timeOrigin + performance.now();

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function until<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms: number,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(200);
  }
}

/**
 * Node options for the worker process: those our image gives its workers (the Dockerfile's
 * `NODE_OPTIONS`, small young generations), so that the worker is measured as it is deployed.
 * `BENCH_WORKER_NODE_ARGS` replaces them, split on spaces (empty: none; or e.g. `--cpu-prof
 * --cpu-prof-dir=…`, which NODE_OPTIONS refuses).
 */
export function workerNodeArgs(): string[] {
  const given = process.env.BENCH_WORKER_NODE_ARGS;
  if (given !== undefined) return given.split(' ').filter(Boolean);
  const image = /^\s*NODE_OPTIONS=(\S+)/m.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  return image?.[1] ? image[1].split(' ').filter(Boolean) : [];
}

/**
 * `orchestrator worker` as its own process; resolves once it polls (its "worker started" line). `onLine`
 * gets every JSON log line after that.
 */
async function startWorkerProcess(
  target: FleetTarget,
  taskQueue: string,
  env: Record<string, string>,
  onLine?: (line: Record<string, unknown>) => void,
): Promise<ChildProcess> {
  const nodeArgs = workerNodeArgs();
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'bin/orchestrator.js'), 'worker'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: target.address,
      ORCHESTRATOR_TASK_QUEUE: taskQueue,
      ORCHESTRATOR_OUTPUTS_DIR: path.join(target.dir, 'outputs'),
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  let partial = '';
  child.stderr?.setEncoding('utf8');
  const started = new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: string) => {
      if (log.length < 200_000) log += chunk;
      if (log.includes('"worker started"')) resolve();
      if (!onLine) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          onLine(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`worker exited (${code}) before it started:\n${log.slice(-2000)}`)),
    );
  });
  await started;
  return child;
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, delay(30_000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

function heldSpec() {
  return ProjectSpecSchema.parse({
    project: { name: 'fleet' },
    phases: [
      {
        name: 'work',
        agents: [
          {
            role: 'dev',
            backend: 'script',
            // Its own start time, then held until the bench releases the round: a read of a FIFO in the
            // workspace (the one place a sandboxed script may see), which blocks without a process a
            // second (a `sleep 1` poll was 200 forks a second at N = 200, load the bench itself made).
            // The FIFO is gone before the agent ends, so the checkpoint never sees it.
            // Safe to run again: a killed attempt leaves its FIFO, and may have died between making it and
            // writing its start (`mkfifo .hold && date > started` then never wrote it, and the round waited
            // for that start for 30 minutes). The first attempt's start counts; `attempts` counts them.
            command: [
              'sh',
              '-c',
              'echo >> attempts; [ -p .hold ] || mkfifo .hold; ' +
                '[ -s started ] || { date +%s%N > .started && mv .started started; }; ' +
                'cat .hold > /dev/null; rm -f .hold',
            ],
          },
        ],
      },
    ],
  });
}

/**
 * Ends a held agent's read of its FIFO: opened for writing without blocking (the agent is reading it, as
 * it wrote its start mark after making it) and closed, so its `cat` sees the end of input.
 */
async function release(fifo: string): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      return;
    } catch (err) {
      // ENXIO: its `cat` has not opened the FIFO yet (the start mark comes just before).
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || tries > 600) throw err;
      await delay(100);
    }
  }
}

/** Runs the fleet rounds against a Temporal server; one fresh worker process per N. */
export async function measureFleet(target: FleetTarget, opts: FleetOptions): Promise<FleetRow[]> {
  // A stale CLI or workflow bundle would be rebuilt by the first worker, inside its process: webpack's
  // few hundred MiB would be that worker's peak RSS, not the runs'.
  await ensureCli();
  if (workflowBundleStaleness() !== undefined) await buildWorkflowBundle();
  const connection = await Connection.connect({ address: target.address });
  const client = new Client({ connection });
  const rows: FleetRow[] = [];
  try {
    for (const n of opts.ns) {
      const taskQueue = `fleet-${n}-${Date.now()}`;
      const worker = await startWorkerProcess(target, taskQueue, {
        ORCHESTRATOR_MAX_CONCURRENT_AGENTS: String(n),
        ...opts.env,
      });
      try {
        const pid = worker.pid!;
        await delay(1_000);
        const idle = statusKiB(pid, 'VmRSS') / 1024;
        const round = fs.mkdtempSync(path.join(target.dir, `n${n}-`));
        const spec = heldSpec();
        const before = await serverCounts(target.metricsUrl);
        const t0 = nowMs();
        const runs = await Promise.all(
          Array.from({ length: n }, async (_, i) => {
            const workspace = path.join(round, `ws-${i}`);
            if (opts.ratePerS) await delay(Math.max(0, t0 + (i * 1000) / opts.ratePerS - nowMs()));
            const at = nowMs();
            const input = await startRun(client, {
              spec,
              workspace,
              outputsDir: path.join(target.dir, 'outputs'),
              taskQueue,
            });
            return { runId: input.runId, workspace, at };
          }),
        );
        const startedAt = (ws: string) => {
          try {
            const text = fs.readFileSync(path.join(ws, 'started'), 'utf8').trim();
            return text ? Number(text) / 1e6 : undefined;
          } catch {
            return undefined;
          }
        };
        // A run that ends before its agent started (it failed) would never start it: say so soon. One list
        // call every 15 s: a result() per run, asked again when it failed, was 100 calls a second against
        // a server already falling behind (7,879 failed long polls in one round).
        let checkedAt = Date.now();
        const endedEarly = async (): Promise<string | undefined> => {
          if (Date.now() - checkedAt < 15_000) return undefined;
          checkedAt = Date.now();
          try {
            for await (const w of client.workflow.list({
              query: `TaskQueue = '${taskQueue}' AND ExecutionStatus != 'Running'`,
            })) {
              const r = runs.find((x) => x.runId === w.workflowId);
              if (r && startedAt(r.workspace) === undefined) return `${w.workflowId} ${w.status.name}`;
            }
          } catch {
            // a loaded server: next time
          }
          return undefined;
        };
        await until(
          async () => {
            if (runs.every((r) => startedAt(r.workspace) !== undefined)) return true;
            const ended = await endedEarly();
            if (ended) throw new Error(`a run ended before its agent started: ${ended}`);
            return false;
          },
          `${n} agents started`,
          1_800_000,
        );
        // A moment with every run held, for the RSS of N concurrent runs.
        await delay(2_000);
        const held = statusKiB(pid, 'VmRSS') / 1024;
        const heldPeak = statusKiB(pid, 'VmHWM') / 1024;
        await Promise.all(runs.map((r) => release(path.join(r.workspace, '.hold'))));
        const ends = await Promise.all(
          runs.map((r) =>
            client.workflow
              .getHandle(r.runId)
              .result()
              .then(
                (x: { state?: string }) => x.state,
                () => 'failed',
              ),
          ),
        );
        const peak = statusKiB(pid, 'VmHWM') / 1024;
        const after = await serverCounts(target.metricsUrl);
        const attempts = runs.map((r) => {
          try {
            return fs.readFileSync(path.join(r.workspace, 'attempts'), 'utf8').split('\n').length - 1;
          } catch {
            return 0;
          }
        });
        const latencies = runs.map((r) => startedAt(r.workspace)! - r.at);
        const row: FleetRow = {
          runs: n,
          idleRssMiB: Math.round(idle),
          heldRssMiB: Math.round(held),
          peakRssMiB: Math.round(peak),
          heldPeakRssMiB: Math.round(heldPeak),
          startP50Ms: Math.round(median(latencies)),
          startP99Ms: Math.round(percentile(latencies, 99)),
          failures: ends.filter((s) => s !== 'completed').length,
          retries: attempts.reduce((sum, a) => sum + Math.max(0, a - 1), 0),
          ...(opts.ratePerS ? { ratePerS: opts.ratePerS } : {}),
          ...(before && after
            ? {
                serverRequests: after.requests - before.requests,
                serverHeartbeats: after.heartbeats - before.heartbeats,
                serverErrors: after.errors - before.errors,
              }
            : {}),
          wallMs: Math.round(nowMs() - t0),
        };
        rows.push(row);
        opts.onRow?.(row);
        fs.rmSync(round, { recursive: true, force: true });
      } finally {
        await stopWorker(worker);
      }
    }
  } finally {
    await connection.close();
  }
  return rows;
}

/** Rollback timings, ms. */
export interface RollbackFigures {
  /**
   * update sent → the worker noticed the agent's cancellation and signalled its process group (the
   * worker's `ending script process group` log line: the agent's own trap may not get to say so, since
   * the group is killed as soon as the sandbox ends).
   */
  noticedMs: number[];
  /** update sent → the rolled-back phase's agent started again. */
  restartedMs: number[];
}

/** Rolls a run back `times` times while its second phase's agent runs; see the module doc. */
export async function measureRollback(target: FleetTarget, times = 5): Promise<RollbackFigures> {
  const connection = await Connection.connect({ address: target.address });
  const client = new Client({ connection });
  const taskQueue = `rollback-${Date.now()}`;
  // When the worker began ending the agent because it was cancelled (pino's `time`, epoch ms).
  const noticed: number[] = [];
  const worker = await startWorkerProcess(target, taskQueue, {}, (line) => {
    if (
      line.msg === 'ending script process group' &&
      line.why === 'cancelled' &&
      typeof line.time === 'number'
    )
      noticed.push(line.time);
  });
  const workspace = fs.mkdtempSync(path.join(target.dir, 'rollback-'));
  // Outside the workspace (a restore would undo it), yet visible to the sandboxed agent.
  const spec = ProjectSpecSchema.parse({
    project: { name: 'rollback' },
    phases: [
      {
        name: 'one',
        agents: [{ role: 'dev', backend: 'script', command: ['sh', '-c', 'echo 1 > one.txt'] }],
      },
      {
        name: 'two',
        agents: [
          {
            role: 'dev',
            backend: 'script',
            // Prints its start (the agent's log keeps it), then holds until cancelled.
            command: ['sh', '-c', 'echo "started $(date +%s%N)"; while :; do sleep 600 & wait $!; done'],
          },
        ],
      },
    ],
  });
  const out: RollbackFigures = { noticedMs: [], restartedMs: [] };
  try {
    const input = await startRun(client, {
      spec,
      workspace,
      outputsDir: path.join(target.dir, 'outputs'),
      taskQueue,
    });
    const logFile = path.join(target.dir, 'outputs', input.runId, 'agents', 'two-dev.log');
    const starts = () => {
      try {
        return [...fs.readFileSync(logFile, 'utf8').matchAll(/^started (\d+)$/gm)].map(
          (m) => Number(m[1]) / 1e6,
        );
      } catch {
        return [];
      }
    };
    const handle = client.workflow.getHandle(input.runId);
    await until(async () => (await handle.query(checkpointsQuery)).length >= 1, 'CP1', 600_000);
    for (let i = 0; i < times; i++) {
      await until(() => starts().length === i + 1, `agent start ${i + 1}`, 600_000);
      // Past its first heartbeat, as a turn that has been running a while.
      await delay(TURN_HEARTBEAT_MS + 500);
      const t0 = nowMs();
      await rollbackRun(client, input.runId, 'CP1', 'bench');
      await until(() => starts().length === i + 2, `agent start ${i + 2}`, 600_000);
      // The agent's trap used to print its end, but the sandbox's group is killed before a trap can
      // run, so that line never came and the figure was NaN.
      const seen = noticed.find((at) => at >= t0);
      if (seen !== undefined) out.noticedMs.push(Math.round(seen - t0));
      out.restartedMs.push(Math.round(starts()[i + 1]! - t0));
    }
    await handle.terminate('bench over');
  } finally {
    await stopWorker(worker);
    await connection.close();
  }
  return out;
}

/** Prints the fleet table (with a baseline beside when given). */
export function printFleet(rows: FleetRow[], baseline?: FleetRow[], first = rows[0]): void {
  const cell = (r: FleetRow | undefined) =>
    r
      ? `${String(r.peakRssMiB).padStart(5)} MiB peak${r.heldPeakRssMiB !== undefined ? ` (${r.heldPeakRssMiB} until all held)` : ''} ${String(r.heldRssMiB).padStart(5)} held  start p50 ${String(r.startP50Ms).padStart(6)} ms p99 ${String(r.startP99Ms).padStart(6)} ms  ${r.failures} failed, ${r.retries} retried` +
        (r.serverRequests !== undefined
          ? `  server: ${r.serverRequests} requests (${r.serverHeartbeats} heartbeats), ${r.serverErrors} errors, ${(r.wallMs / 1000).toFixed(0)} s`
          : '')
      : '';
  const paced = rows.find((r) => r.ratePerS)?.ratePerS;
  console.log(
    `fleet: one worker process, N concurrent runs of script agents, ${paced ? `started ${paced} a second` : 'started all at once'}`,
  );
  for (const r of rows) {
    const b = baseline?.find((x) => x.runs === r.runs);
    const perRun =
      first && r.runs > first.runs ? (r.peakRssMiB - first.peakRssMiB) / (r.runs - first.runs) : undefined;
    console.log(
      `  N=${String(r.runs).padStart(3)}  ${cell(r)}` +
        (perRun !== undefined ? `  (+${perRun.toFixed(2)} MiB/run)` : '') +
        (b ? `\n         before #16: ${cell(b)}  (RSS ${(r.peakRssMiB / b.peakRssMiB).toFixed(2)}×)` : ''),
    );
  }
}

/** Prints the rollback line. */
export function printRollback(f: RollbackFigures): void {
  const fmt = (xs: number[]) =>
    xs.length ? `p50 ${median(xs).toFixed(0)} ms, max ${Math.max(...xs)} ms` : 'not seen (no log line)';
  const noticed =
    f.noticedMs.length === f.restartedMs.length
      ? ''
      : ` (${f.noticedMs.length} of ${f.restartedMs.length} seen)`;
  console.log(
    `rollback (${f.restartedMs.length}×): cancellation noticed ${fmt(f.noticedMs)}${noticed}; next phase started ${fmt(f.restartedMs)}` +
      ` (turn heartbeat interval ${TURN_HEARTBEAT_MS} ms: what noticing waited for without the nudge)`,
  );
}

async function main(): Promise<void> {
  const ns = (process.env.BENCH_FLEET_NS ?? '10,100,200,400').split(',').map(Number);
  const rate = process.env.BENCH_FLEET_RATE ? Number(process.env.BENCH_FLEET_RATE) : undefined;
  if (rate !== undefined && !(rate > 0))
    throw new Error(`BENCH_FLEET_RATE must be a number > 0, got ${process.env.BENCH_FLEET_RATE}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-fleet-'));
  const server = await startDevServer({
    cliPath: await ensureTemporalCli(),
    dbFile: path.join(dir, 'temporal.db'),
    logFile: path.join(dir, 'temporal.log'),
    headless: true,
  });
  const target = { address: server.address, dir, metricsUrl: server.metricsUrl };
  try {
    console.log(
      `load before: ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} (${os.cpus().length} cores)`,
    );
    const nodeArgs = workerNodeArgs();
    console.log(
      `worker: node ${nodeArgs.join(' ') || '(no options)'} bin/orchestrator.js worker` +
        (process.env.BENCH_WORKER_NODE_ARGS === undefined ? " (the image's NODE_OPTIONS, Dockerfile)" : ''),
    );
    if (process.env.BENCH_FLEET_ROLLBACK !== '0') printRollback(await measureRollback(target));
    const rows: FleetRow[] = [];
    for (const n of ns) {
      rows.push(...(await measureFleet(target, { ns: [n], ...(rate ? { ratePerS: rate } : {}) })));
      // Each row as soon as it is measured: a round cut short (a timeout, a loaded machine) keeps those.
      console.log(`  measured N=${n} (load ${os.loadavg()[0]!.toFixed(1)})`);
      printFleet(rows.slice(-1), undefined, rows[0]);
    }
    console.log('');
    printFleet(rows);
    const at200 = rows.find((r) => r.runs === 200);
    if (at200) {
      const ok = at200.peakRssMiB <= 600 && at200.startP50Ms <= 2_000 && at200.failures === 0;
      console.log(
        `target at 200 concurrent runs: peak RSS <= 600 MiB and agent start p50 <= 2 s: ${ok ? 'ok' : 'MISSED'} ` +
          `(${at200.peakRssMiB} MiB, p50 ${at200.startP50Ms} ms, ${at200.ratePerS ? `started ${at200.ratePerS} a second` : 'all started at once'})`,
      );
    }
    console.log(
      `load after: ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
