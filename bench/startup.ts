/**
 * `npm run bench:startup`: how fast the CLI and the worker are ready, each next to a baseline measured
 * in the same run (so a loaded machine shows in both):
 *
 * - `orchestrator --help`, median of 10, against a bare `node -e ''` (Node's own start) and against
 *   the same compiled CLI loading every command module (what lazy loading saves). Target: ≤ 150 ms.
 *   When NODE_EXTRA_CA_CERTS is set (as on our development machines), Node parses its bundled root
 *   certificates and that file at every start, before any script runs: both are measured again without
 *   it, so the figures say how much of a start is Node's own and how much is this environment's.
 * - `orchestrator worker` from spawn to polling: its own `startupMs` log field (process start to
 *   polling) and, end to end, spawn until a workflow that was already waiting on the task queue has had
 *   its first workflow task completed. Target: < 1 s. Uses the prebuilt workflow bundle (dist/). Also
 *   where the start went (the worker's `startup` log field): loading modules, setting up (connection,
 *   gateway, sandbox probe, bundle check) and creating the Temporal workers.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ensureCli, WORKFLOW_BUNDLE, workflowBundleStaleness } from '../scripts/build-lib.mjs';
import type { StartupBreakdown, ThreadTimes } from '../workers/worker';
import { ensureTemporalCli, startDevServer } from '../src/devserver';
import { WorkflowType } from '../src/shared/names';
import { createLogger } from '../src/logger';
import { loadWorkflowBundle } from '../workers/bundle';
import { median } from './harness';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/orchestrator.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const WORKER_RUNS = Number(process.env.BENCH_WORKER_RUNS ?? 3);

const TIME = '/usr/bin/time';
const haveTime = fs.existsSync(TIME);

interface Sample {
  wall: number;
  /** user + system CPU of the process (NaN without /usr/bin/time): what a loaded machine inflates least. */
  cpu: number;
}

/** This environment without NODE_EXTRA_CA_CERTS, which Node would load at every start. */
const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...envWithoutCaCerts } = process.env;

/** Wall time and CPU time of one process run, in ms; throws if it fails. */
function timeRun(args: string[], env: NodeJS.ProcessEnv = process.env): Sample {
  const [cmd, argv] = haveTime
    ? [TIME, ['-f', 'cpu %U %S', process.execPath, ...args]]
    : [process.execPath, args];
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${String(r.stderr)}`);
  const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(String(r.stderr));
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

const med = (xs: Sample[]): Sample => ({
  wall: median(xs.map((x) => x.wall)),
  cpu: median(xs.map((x) => x.cpu)),
});
const fmt = (s: Sample): string =>
  `${s.wall.toFixed(0)} ms wall` + (Number.isNaN(s.cpu) ? '' : ` (${s.cpu.toFixed(0)} ms CPU)`);

interface CliSamples {
  node: Sample;
  help: Sample;
  eager: Sample;
  /** The same two without NODE_EXTRA_CA_CERTS, when it is set. */
  nodeNoCa?: Sample;
  helpNoCa?: Sample;
}

/** Median of RUNS runs, the commands interleaved so that machine noise hits them alike. */
function benchCli(): CliSamples {
  const eagerScript =
    `const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist/cli/main.cjs'))});` +
    `await main(['node', 'orchestrator', '--help']);`;
  const samples = {
    node: [] as Sample[],
    help: [] as Sample[],
    eager: [] as Sample[],
    nodeNoCa: [] as Sample[],
    helpNoCa: [] as Sample[],
  };
  timeRun([BIN, '--help']); // warm the file cache
  for (let i = 0; i < RUNS; i++) {
    samples.node.push(timeRun(['-e', '']));
    samples.help.push(timeRun([BIN, '--help']));
    samples.eager.push(timeRun(['--input-type=module', '-e', eagerScript]));
    if (extraCaCerts !== undefined) {
      samples.nodeNoCa.push(timeRun(['-e', ''], envWithoutCaCerts));
      samples.helpNoCa.push(timeRun([BIN, '--help'], envWithoutCaCerts));
    }
  }
  return {
    node: med(samples.node),
    help: med(samples.help),
    eager: med(samples.eager),
    ...(extraCaCerts !== undefined && { nodeNoCa: med(samples.nodeNoCa), helpNoCa: med(samples.helpNoCa) }),
  };
}

interface WorkerSample {
  /** The worker's own report: process start to polling, wall and CPU. */
  startupMs: number;
  startupCpuMs: number;
  /** The main thread's CPU and every thread's wait for a CPU (not reported off Linux). */
  threads?: ThreadTimes;
  /** Spawn until a waiting workflow's first task is done. */
  firstTaskMs: number;
  /** Where the start went, as the worker logged it. */
  breakdown: StartupBreakdown;
}

interface StartedLine {
  startupMs: number;
  startupCpuMs: number;
  startupThreads?: ThreadTimes;
  startup: StartupBreakdown;
}

/** The worker's `worker started` log line, once it is in `stderr`. */
function startedLine(stderr: string): StartedLine | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.includes('"worker started"')) continue;
    try {
      return JSON.parse(line) as StartedLine;
    } catch {
      return undefined; // not all of the line has arrived yet
    }
  }
  return undefined;
}

/** Spawns `orchestrator worker` with a workflow already waiting on its task queue. */
async function benchWorkerOnce(
  client: Client,
  address: string,
  i: number,
  dir: string,
): Promise<WorkerSample> {
  const taskQueue = `startup-${i}`;
  // An input the workflow refuses: its first workflow task fails the run, which proves the poll.
  const handle = await client.workflow.start(WorkflowType.project, {
    taskQueue,
    workflowId: `startup-${i}-${Date.now()}`,
    args: [{}],
  });
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, 'worker'], {
    cwd: ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: address,
      ORCHESTRATOR_TASK_QUEUE: taskQueue,
      ORCHESTRATOR_OUTPUTS_DIR: path.join(dir, 'outputs'),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += String(b);
  });
  try {
    await handle.result().then(
      () => {
        throw new Error('the bench workflow was expected to fail on its input');
      },
      (err: unknown) => {
        if (!(err instanceof WorkflowFailedError)) throw err;
      },
    );
    const firstTaskMs = performance.now() - t0;
    const started = startedLine(stderr);
    if (!started) throw new Error(`worker logged no "worker started" line:\n${stderr}`);
    return {
      startupMs: started.startupMs,
      startupCpuMs: started.startupCpuMs,
      ...(started.startupThreads && { threads: started.startupThreads }),
      firstTaskMs,
      breakdown: started.startup,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

await ensureCli();
if (workflowBundleStaleness() !== undefined) await loadWorkflowBundle(createLogger('warn'));

const cli = benchCli();
console.log(`orchestrator --help, median of ${RUNS}: ${fmt(cli.help)} (target <= 150 ms wall)`);
console.log(
  `  baseline node -e '': ${fmt(cli.node)}; --help is ${(cli.help.wall / cli.node.wall).toFixed(2)}x Node's own start`,
);
console.log(
  `  same CLI loading every command module: ${fmt(cli.eager)}; lazy --help is ${(cli.help.wall / cli.eager.wall).toFixed(2)}x that`,
);
if (cli.nodeNoCa && cli.helpNoCa) {
  console.log(
    `  without NODE_EXTRA_CA_CERTS (set here; Node loads it at every start): node -e '' ${fmt(cli.nodeNoCa)}, --help ${fmt(cli.helpNoCa)}`,
  );
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-bench-startup-'));
const server = await startDevServer({
  cliPath: await ensureTemporalCli(),
  dbFile: path.join(dir, 'temporal.db'),
  logFile: path.join(dir, 'temporal.log'),
  headless: true,
});
const connection = await Connection.connect({ address: server.address });
try {
  const client = new Client({ connection });
  const samples: WorkerSample[] = [];
  for (let i = 0; i < WORKER_RUNS; i++) samples.push(await benchWorkerOnce(client, server.address, i, dir));
  const startup = median(samples.map((s) => s.startupMs));
  const startupCpu = median(samples.map((s) => s.startupCpuMs));
  const firstTask = median(samples.map((s) => s.firstTaskMs));
  console.log(
    `orchestrator worker, median of ${WORKER_RUNS} (prebuilt ${path.relative(ROOT, WORKFLOW_BUNDLE)}):`,
  );
  console.log(
    `  process start to polling (worker's startupMs): ${startup} ms wall (${startupCpu} ms CPU) (target < 1000 ms)`,
  );
  // On a loaded machine threads wait for a CPU. The start's wall time minus the main thread's wait
  // estimates a quiet machine's from above (the main thread may also have waited for the workflow thread
  // while that one waited for a CPU); minus the workflow thread's wait too, from below.
  type Timed = WorkerSample & { threads: ThreadTimes };
  const timed = samples.filter((s): s is Timed => s.threads !== undefined);
  if (timed.length > 0) {
    const t = (f: (s: Timed) => number): number => median(timed.map(f));
    console.log(
      `  main thread ${t((s) => s.threads.mainCpuMs)} ms CPU, ${t((s) => s.threads.mainWaitMs)} ms waiting for one; ` +
        `workflow thread (the busiest other) ${t((s) => s.threads.busiestOtherCpuMs)} ms CPU, ` +
        `${t((s) => s.threads.busiestOtherWaitMs)} ms waiting`,
    );
    console.log(
      `  quiet estimate, wall minus the main thread's wait: ${t((s) => s.startupMs - s.threads.mainWaitMs)} ms; ` +
        `minus the workflow thread's too: ${t((s) => s.startupMs - s.threads.mainWaitMs - s.threads.busiestOtherWaitMs)} ms`,
    );
  }
  console.log(
    `  each run (wall / CPU / main thread CPU, wait / workflow thread CPU, wait; ms): ` +
      samples
        .map((s) =>
          [
            s.startupMs,
            s.startupCpuMs,
            s.threads?.mainCpuMs,
            s.threads?.mainWaitMs,
            s.threads?.busiestOtherCpuMs,
            s.threads?.busiestOtherWaitMs,
          ].join(' / '),
        )
        .join(', '),
  );
  const part = (k: keyof StartupBreakdown): number => median(samples.map((s) => s.breakdown[k]));
  console.log(
    `  where it went: modules loaded ${part('modulesMs')} ms (${part('modulesCpuMs')} ms CPU), ` +
      `setup ${part('setupMs')} ms (${part('setupCpuMs')} ms CPU), ` +
      `Temporal workers created ${part('workersMs')} ms (${part('workersCpuMs')} ms CPU)`,
  );
  console.log(
    `  of which before the main worker's workflow thread was spawned (bundle read and compiled once here): ` +
      `${part('threadSpawnMs')} ms (${part('threadSpawnCpuMs')} ms CPU); the rest is that thread evaluating ` +
      `the bundle (it was started with the process and loaded the SDK meanwhile, its CPU counted in ` +
      `"modules") while the other three workers are created here`,
  );
  console.log(`  spawn to a waiting workflow's first task done: ${firstTask.toFixed(0)} ms`);
  console.log(
    `  baseline node -e '': ${fmt(cli.node)}; polling is ${(startup / cli.node.wall).toFixed(2)}x Node's own start`,
  );
} finally {
  await connection.close();
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
