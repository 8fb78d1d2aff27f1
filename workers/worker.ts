/**
 * The one worker process: a NativeConnection and four Temporal workers on it. The one on the `orchestrator`
 * task queue runs the workflows from workflows/index.ts and every short step; the one on
 * `orchestrator-agents` runs agent turns only. Each has its own capacity (config/capacity), so a fleet of
 * long agent turns never holds up a checkpoint, a gate or an audit append of another run. The other two
 * poll this host's own queues, `orchestrator-host-<id>` and `orchestrator-host-<id>-agents`
 * (src/shared/names hostTaskQueue): the workspace steps and agent turns of the runs whose workspace lives
 * on this host (README "Many hosts").
 */
import fs from 'node:fs';
import {
  NativeConnection,
  Worker,
  type InjectedSinks,
  type State,
  type WorkerOptions,
} from '@temporalio/worker';
import { NUDGED_QUICK_EVERY_MS, TurnNudges, turnKey } from '../activities/turn-heartbeat';
import type { AgentTurnSinks } from '../src/shared/sinks';
import type { AppConfig } from '../config/env';
import { agentTurnActivities, createActivities, type ActivityDeps } from '../activities';
import { agentTaskQueue, hostTaskQueue } from '../src/shared/names';
import { createSandbox, describeSandbox, type SandboxState } from '../activities/sandbox';
import { cannotReachTemporal, missingNamespace } from '../src/connection-error';
import { connectionOptions, describeConnection } from '../config/temporal';
import type { Logger } from '../src/logger';
import { startMeterGateway, type MeterGateway } from '../src/meter/gateway';
import { ensureSearchAttributes } from '../src/search-attributes';
import { loadWorkflowBundle } from './bundle';
import { redactingActivityInterceptors } from './redaction';
import type { WorkerTracing } from './tracing';
import { installRuntimeLogger } from './runtime-logger';
import { handOverPrestartedThread } from './workflow-thread';

export { WORKFLOWS_PATH } from './bundle';

/** Wall time since the process started and CPU time used so far (all threads), in ms. */
function processClock(): { wallMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  return { wallMs: Math.round(performance.now()), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
}

/**
 * This process's threads as the kernel accounts them (Linux: /proc/self/task/<tid>/schedstat), in ms:
 * time on a CPU and time runnable but waiting for one, of the main thread and of the busiest other
 * thread (the SDK's workflow thread; the others are Node's and the core bridge's helpers). Undefined
 * elsewhere. Waiting is what a loaded machine adds: bench:startup subtracts it from a start's wall time
 * to estimate a quiet machine's, where the workflow thread has the second core to itself.
 */
export interface ThreadTimes {
  mainCpuMs: number;
  mainWaitMs: number;
  busiestOtherCpuMs: number;
  busiestOtherWaitMs: number;
}

function threadTimes(): ThreadTimes | undefined {
  try {
    const times: ThreadTimes = { mainCpuMs: 0, mainWaitMs: 0, busiestOtherCpuMs: 0, busiestOtherWaitMs: 0 };
    for (const tid of fs.readdirSync('/proc/self/task')) {
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8');
      } catch {
        continue; // the thread has exited since the listing
      }
      const [onCpu = 0, waiting = 0] = stat.split(' ').map((n) => Math.round(Number(n) / 1e6));
      if (tid === String(process.pid)) {
        times.mainCpuMs = onCpu;
        times.mainWaitMs = waiting;
      } else if (onCpu > times.busiestOtherCpuMs) {
        times.busiestOtherCpuMs = onCpu;
        times.busiestOtherWaitMs = waiting;
      }
    }
    return times;
  } catch {
    return undefined;
  }
}

/**
 * When this module was evaluated, which is after everything it imports (the Temporal SDK, the
 * activities and their packages): the module-loading part of a worker's start.
 */
const modulesLoaded = processClock();

/**
 * Where a worker's start went, for the `worker started` log line and `npm run bench:startup`: each
 * step's wall and CPU time in ms (CPU of all threads; a loaded machine inflates wall time the most).
 */
export interface StartupBreakdown {
  /** Process start until the worker's modules were loaded. */
  modulesMs: number;
  modulesCpuMs: number;
  /** Connecting, the metering gateway, the sandbox probe and the workflow bundle check (concurrently). */
  setupMs: number;
  setupCpuMs: number;
  /** Creating the Temporal workers, the workflow thread loading the bundle among it. */
  workersMs: number;
  workersCpuMs: number;
  /**
   * The part of workersMs before the main worker spawned its workflow thread (the SDK reading the bundle
   * and compiling it once in this thread); the other three workers are created after it, while that
   * thread boots.
   */
  threadSpawnMs: number;
  threadSpawnCpuMs: number;
}

export interface CreateWorkerOptions {
  config: AppConfig;
  logger: Logger;
  /** Reuse a connection (tests); otherwise one is opened to config.temporal.address. */
  connection?: NativeConnection;
  /** A workflow bundle to run; otherwise the build step's prebuilt one (rebuilt first when stale). */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Extra or replacement activity dependencies (e.g. the rehearsal model server's URL). */
  deps?: Partial<ActivityDeps>;
  /** Extra worker options (identity, concurrency) for tests and benchmarks: the main queue's worker. */
  workerOptions?: Partial<WorkerOptions>;
  /** Extra options of the agent-turn worker on `<queue>-agents`. */
  agentWorkerOptions?: Partial<WorkerOptions>;
}

/**
 * The process's Temporal workers, run and shut down together: `main` on the task queue (workflows
 * and short steps), `agents` on `<queue>-agents` (agent turns), and `host` on this host's two queues
 * (workspace steps and agent turns of the runs placed here).
 */
export class OrchestratorWorker {
  constructor(
    readonly main: Worker,
    readonly agents: Worker,
    readonly host: readonly Worker[] = [],
  ) {}

  private all(): Worker[] {
    return [this.main, this.agents, ...this.host];
  }

  /** Runs all until {@link shutdown}; when one fails, the others are shut down and the failure thrown. */
  async run(): Promise<void> {
    const runs = this.all().map((w) =>
      w.run().catch((err: unknown) => {
        this.shutdown();
        throw err;
      }),
    );
    const settled = await Promise.allSettled(runs);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Starts a graceful shutdown of all (in-flight activities get the grace time). */
  shutdown(): void {
    for (const w of this.all()) if (w.getState() === 'RUNNING') w.shutdown();
  }

  /** The main worker's state (the agent worker follows it). */
  getState(): State {
    return this.main.getState();
  }
}

const noop = (): void => undefined;

/**
 * Resolves when this process next spawns a worker thread (Node's `worker` event on process), or when
 * `handedOver` is called: the SDK's workflow thread, spawned (or handed the prestarted one) by
 * Worker.create once it has read the bundle. `stop` stops listening.
 */
function firstWorkerThread(): { spawned: Promise<void>; handedOver: () => void; stop: () => void } {
  let onWorker = noop;
  const spawned = new Promise<void>((resolve) => {
    onWorker = () => resolve();
    process.once('worker', onWorker);
  });
  // A prestarted thread (./workflow-thread) is handed to the SDK without a new `worker` event.
  return { spawned, handedOver: () => onWorker(), stop: () => process.off('worker', onWorker) };
}

/**
 * Releases workers that were created but will never run: each is run and shut down at once (the SDK
 * offers no other way to let go of a worker, and its connection cannot close while one holds it).
 */
async function discardWorkers(workers: readonly Worker[]): Promise<void> {
  await Promise.allSettled(
    workers.map((w) => {
      const running = w.run();
      if (w.getState() === 'RUNNING') w.shutdown();
      return running;
    }),
  );
}

export async function createWorker(opts: CreateWorkerOptions): Promise<{
  worker: OrchestratorWorker;
  connection: NativeConnection;
  tracing?: WorkerTracing;
  startup: StartupBreakdown;
}> {
  const { config, logger } = opts;
  const begun = processClock();
  installRuntimeLogger(logger, config.metrics);
  // Tracing code is loaded only when traces are exported: an untraced worker pays nothing for it.
  const tracing = config.tracing ? (await import('./tracing')).startTracing(config.tracing) : undefined;
  // Independent start-up work runs at once (connecting, the gateway's listener, probing the sandbox,
  // checking the workflow bundle): polling begins as soon as the slowest is done, not their sum.
  const actConfig = opts.deps?.config ?? config;
  const sandbox =
    opts.deps?.sandbox ?? createSandbox({ outputsDir: config.outputsDir, stateDir: config.home });
  // Workflows named by the caller (a benchmark's workflowsPath) replace the production bundle.
  const own = opts.workerOptions?.workflowsPath ?? opts.workerOptions?.workflowBundle;
  const [connected, gatewayStarted, sandboxState, bundleLoaded] = await Promise.allSettled([
    opts.connection ??
      NativeConnection.connect(connectionOptions(config.temporal)).catch((err: unknown) => {
        throw new Error(cannotReachTemporal(config.temporal.address, err, config.temporal.addressSource));
      }),
    // The metering gateway lives in this process: when the worker dies, no agent can spend unmetered.
    opts.deps?.gateway ??
      startMeterGateway({
        upstream: actConfig.anthropic.baseURL,
        apiKey: actConfig.anthropic.apiKey,
        outputsDir: actConfig.outputsDir,
        logger,
      }),
    sandbox.state(),
    opts.workflowBundle ?? (own ? undefined : loadWorkflowBundle(logger, { traced: tracing !== undefined })),
  ]);
  const failed = [connected, gatewayStarted, sandboxState, bundleLoaded].find((r) => r.status === 'rejected');
  if (failed) {
    // Nothing started here outlives a worker that could not start.
    if (connected.status === 'fulfilled' && !opts.connection) await connected.value.close();
    if (gatewayStarted.status === 'fulfilled' && !opts.deps?.gateway) await gatewayStarted.value.close();
    await tracing?.shutdown();
    throw failed.reason;
  }
  const connection = (connected as PromiseFulfilledResult<NativeConnection>).value;
  const gateway = (gatewayStarted as PromiseFulfilledResult<MeterGateway>).value;
  const state = (sandboxState as PromiseFulfilledResult<SandboxState>).value;
  const workflowBundle = (bundleLoaded as PromiseFulfilledResult<WorkerOptions['workflowBundle']>).value;
  const setUp = processClock();
  // Asked once per worker: the Web UI's attributes, registered here when the namespace lacks them.
  let indexed: Promise<string[]> | undefined;
  const indexedSearchAttributes = () =>
    (indexed ??= ensureSearchAttributes(connection.operatorService, config.temporal.namespace).then((r) => {
      if (r.added.length > 0) logger.info({ added: r.added }, 'registered search attributes');
      if (r.missing.length > 0)
        logger.warn(
          { missing: r.missing, error: r.error },
          'search attributes are not registered (run `orchestrator setup`): runs will not set them',
        );
      return r.available;
    }));
  // A cancelled agent workflow tells its running turn here at once (activities/turn-heartbeat).
  const nudges = opts.deps?.nudges ?? new TurnNudges();
  const activities = createActivities({
    config,
    logger,
    sandbox,
    indexedSearchAttributes,
    ...opts.deps,
    gateway,
    nudges,
  });
  const sinks: InjectedSinks<AgentTurnSinks> = {
    agentTurns: {
      cancelRequested: {
        fn: (info) => nudges.nudge(turnKey(info.workflowId, info.runId)),
        callDuringReplay: false,
      },
    },
  };
  // One line at start: whether agent commands are confined here, and if not, why.
  if (state.kind === 'bwrap') logger.info({ sandbox: state.kind }, describeSandbox(state));
  else logger.warn({ sandbox: state.kind }, describeSandbox(state));
  const common = {
    connection,
    namespace: config.temporal.namespace,
    // Cancellation reaches an activity only in a heartbeat response. The default throttle (80% of the
    // heartbeat timeout) would let a rolled-back agent run on for ~25 s; a rollback should end it now.
    defaultHeartbeatThrottleInterval: '1 second',
    maxHeartbeatThrottleInterval: '2 seconds',
    shutdownGraceTime: config.worker.shutdownGraceMs,
    // Secrets never reach history: every activity result and failure is redacted on its way out.
    interceptors: { activity: [redactingActivityInterceptors, ...(tracing?.activityInterceptors ?? [])] },
  } satisfies Partial<WorkerOptions>;
  // This host's queues: the workspace steps and agent turns of the runs placed here. The same activities
  // and capacity as the shared queues (a run's steps go to one or the other, never both).
  const hostQueue = hostTaskQueue(config.temporal.taskQueue, config.host.id);
  // The main worker first: the workflow thread it spawns (where the SDK loads itself and the bundle
  // again, the longest step of a start) then boots on the other core while this thread creates the other
  // three. Created all at once, their validation round trips and the SDK's first protobuf decoding ran
  // here before the main worker had read its bundle, delaying that thread by as much.
  const workflowThread = firstWorkerThread();
  const mainCreated = handOverPrestartedThread(
    () =>
      Worker.create({
        ...common,
        taskQueue: config.temporal.taskQueue,
        // Every activity, agent turns included: a turn scheduled here before the queues were split still runs.
        activities,
        ...(workflowBundle && { workflowBundle }),
        // Workflow spans leave the sandbox through the tracing exporter sink, beside ours.
        sinks: { ...sinks, ...tracing?.sinks },
        maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
        // The SDK's default keeps every run's workflows resident (config/capacity cachedWorkflows).
        maxCachedWorkflows: config.worker.maxCachedWorkflows,
        ...opts.workerOptions,
      }),
    workflowThread.handedOver,
  );
  // Once that thread exists, or the main worker is done without one (it failed, or runs no workflows).
  await Promise.race([workflowThread.spawned, mainCreated.then(noop, noop)]);
  workflowThread.stop();
  const threadSpawned = processClock();
  const createdAll = await Promise.allSettled([
    mainCreated,
    Worker.create({
      ...common,
      taskQueue: agentTaskQueue(config.temporal.taskQueue),
      activities: agentTurnActivities(activities),
      maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentAgents,
      // Turns pace their own heartbeats (every 2–10 s; when nudged every 10 ms, then 50 ms): the SDK must
      // send each one.
      maxHeartbeatThrottleInterval: NUDGED_QUICK_EVERY_MS,
      ...opts.agentWorkerOptions,
    }),
    Worker.create({
      ...common,
      taskQueue: hostQueue,
      activities,
      maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
      ...(opts.workerOptions?.identity ? { identity: opts.workerOptions.identity } : {}),
    }),
    Worker.create({
      ...common,
      taskQueue: agentTaskQueue(hostQueue),
      activities: agentTurnActivities(activities),
      maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentAgents,
      maxHeartbeatThrottleInterval: NUDGED_QUICK_EVERY_MS,
      ...opts.agentWorkerOptions,
    }),
  ]);
  const notCreated = createdAll.find((r) => r.status === 'rejected');
  if (notCreated) {
    // A namespace that does not exist is the usual reason, and the SDK's words for it are a raw dump of
    // the server's answer: asked while the connection is open.
    const missing = await missingNamespace(
      () => connection.workflowService.describeNamespace({ namespace: config.temporal.namespace }),
      config.temporal.namespace,
      config.temporal.address,
    );
    // The ones that were created hold the connection (it cannot close under them): each is run and
    // shut down at once, then what this function started is released as on a failed setup.
    await discardWorkers(createdAll.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
    if (!opts.connection) await connection.close();
    if (!opts.deps?.gateway) await gateway.close();
    await tracing?.shutdown();
    throw missing ? new Error(missing, { cause: notCreated.reason }) : notCreated.reason;
  }
  const [main, agents, hostSteps, hostAgents] = createdAll.map(
    (r) => (r as PromiseFulfilledResult<Worker>).value,
  ) as [Worker, Worker, Worker, Worker];
  const created = processClock();
  if (tracing) logger.info({ traces: config.tracing?.tracesUrl }, 'exporting OpenTelemetry traces');
  return {
    worker: new OrchestratorWorker(main, agents, [hostSteps, hostAgents]),
    connection,
    tracing,
    startup: {
      modulesMs: modulesLoaded.wallMs,
      modulesCpuMs: modulesLoaded.cpuMs,
      setupMs: setUp.wallMs - begun.wallMs,
      setupCpuMs: setUp.cpuMs - begun.cpuMs,
      workersMs: created.wallMs - setUp.wallMs,
      workersCpuMs: created.cpuMs - setUp.cpuMs,
      threadSpawnMs: threadSpawned.wallMs - setUp.wallMs,
      threadSpawnCpuMs: threadSpawned.cpuMs - setUp.cpuMs,
    },
  };
}

/**
 * Runs a worker until SIGINT/SIGTERM, then shuts down gracefully: in-flight activities get the grace time
 * to finish or observe cancellation before the process exits.
 */
export async function runWorkerUntilSignal(
  opts: CreateWorkerOptions,
  /** Also shuts the worker down when this settles (`orchestrator dev`: its server exited). */
  until?: Promise<unknown>,
): Promise<void> {
  const { worker, connection, tracing, startup } = await createWorker(opts);
  void until?.finally(() => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
  });
  const onSignal = (sig: NodeJS.Signals) => {
    opts.logger.info({ signal: sig }, 'shutting down worker');
    worker.shutdown();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const ready = processClock();
  opts.logger.info(
    {
      taskQueue: opts.config.temporal.taskQueue,
      agentTaskQueue: agentTaskQueue(opts.config.temporal.taskQueue),
      host: opts.config.host.id,
      hostTaskQueue: hostTaskQueue(opts.config.temporal.taskQueue, opts.config.host.id),
      checkpointStore: opts.config.host.checkpointStore ?? null,
      shortSteps: opts.config.worker.maxConcurrentActivities,
      agentTurns: opts.config.worker.maxConcurrentAgents,
      cachedWorkflows: opts.config.worker.maxCachedWorkflows,
      // Where and how it connects (TLS, profile), never the key itself.
      ...describeConnection(opts.config.temporal),
      // From process start to polling, then where it went (bench:startup prints both).
      startupMs: ready.wallMs,
      startupCpuMs: ready.cpuMs,
      // Of which on the main thread, and the time threads waited for a CPU (a loaded machine's share).
      startupThreads: threadTimes(),
      startup,
    },
    'worker started',
  );
  // Ignored as the `temporal` CLI ignores them; a misspelt key would otherwise go unnoticed.
  const ignored = opts.config.temporal.ignoredKeys;
  if (ignored && opts.config.temporal.profile) {
    opts.logger.warn(
      { configFile: opts.config.temporal.profile.file, ignoredKeys: ignored },
      'the Temporal config file has keys that are ignored (a misspelling?)',
    );
  }
  try {
    await worker.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!opts.connection) await connection.close();
    // The last spans (the run's own ends with it) leave before the process does.
    await tracing?.shutdown();
  }
}
