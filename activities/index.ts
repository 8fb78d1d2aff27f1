/**
 * All activities, built from factories that receive their dependencies from workers/. Workflows import
 * only the *type* {@link Activities}.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { AppConfig } from '../config/env';
import type { Logger } from '../src/logger';
import { startMeterGateway, type MeterGateway } from '../src/meter/gateway';
import type { ApiActivities } from './api';
import { createAuditActivities } from './audit';
import { createCliActivities } from './cli';
import { createGovernanceActivities } from './governance';
import { createHostActivities, storeCheckpoint } from './host';
import { createMeterActivities } from './meter';
import { createScriptActivities } from './script';
import { createTeamActivities } from './team';
import type { ToolActivities } from './tools';
import { createVisibilityActivities } from './visibility';
import { createWorkspaceActivities } from './workspace';
import { registerSecret } from '../src/redact';
import { createSandbox, type Sandbox } from './sandbox';
import type { TurnNudges } from './turn-heartbeat';

export interface ActivityDeps {
  config: AppConfig;
  logger: Logger;
  /**
   * The metering gateway every model request goes through (workers/ starts it); started on first use
   * when not given.
   */
  gateway?: MeterGateway;
  /** Confinement of agent programs; default one built from the config (outputs and state hidden). */
  sandbox?: Sandbox;
  /** Our search attributes the namespace has (workers/ registers them at start); none when not given. */
  indexedSearchAttributes?: () => Promise<string[]>;
  /** Nudges from agent workflows to their running turns (workers/ feeds it from a sink). */
  nudges?: TurnNudges;
}

export function createActivities(deps: ActivityDeps) {
  const { logger, config } = deps;
  // A key given by configuration rather than the environment is a secret all the same.
  registerSecret(config.anthropic.apiKey);
  let started: Promise<MeterGateway> | undefined = deps.gateway ? Promise.resolve(deps.gateway) : undefined;
  const gateway = () =>
    (started ??= startMeterGateway({
      upstream: config.anthropic.baseURL,
      apiKey: config.anthropic.apiKey,
      outputsDir: config.outputsDir,
      logger,
    }));
  const sandbox = deps.sandbox ?? createSandbox({ outputsDir: config.outputsDir, stateDir: config.home });
  // No agent process learns where Temporal is, let alone its credentials: a team agent's requests go to its
  // turn's endpoint (ORCHESTRATOR_TEAM_SOCKET, src/agent-gateway), which uses the worker's connection.
  const baseEnv: Record<string, string> = {
    // What agents' tools print is read by a model (and by tests): plain text, even when the worker runs
    // under CI=true, which would otherwise switch colour on in tools like our own CLI.
    NO_COLOR: '1',
  };
  const workspace = createWorkspaceActivities({ logger });
  /**
   * A checkpoint is also pushed to the checkpoint store every host reaches (ORCHESTRATOR_CHECKPOINT_STORE,
   * activities/host), before the run hears of it: a checkpoint the run records can always be restored on
   * another host. Retried with the activity when the push fails (the snapshot is idempotent).
   */
  const checkpointPhase = async (
    input: Parameters<typeof workspace.checkpointPhase>[0],
  ): ReturnType<typeof workspace.checkpointPhase> => {
    const r = await workspace.checkpointPhase(input);
    if (r.ok && r.commit) {
      await storeCheckpoint(config, {
        workspace: input.workspace,
        runId: input.runId,
        checkpoint: input.checkpoint,
        commit: r.commit,
      });
    }
    return r;
  };
  return {
    /** A trivial activity used by the smoke workflow and the foundation tests. */
    greet(name: string): Promise<string> {
      logger.info({ name }, 'greet');
      return Promise.resolve(`Hello, ${name}!`);
    },
    ...createScriptActivities({
      logger,
      outputsDir: config.outputsDir,
      baseEnv,
      sandbox,
      nudges: deps.nudges,
    }),
    ...workspace,
    checkpointPhase,
    /**
     * A phase's checkpoint, called as a local activity by the worker running the run's workflow task
     * (workflows/project/checkpoint): taken here when this worker is the run's host (or the run has none);
     * `{ here: false }`, having touched nothing, on any other host, and the run then sends
     * `checkpointPhase` to its host's queue.
     */
    async checkpointHere(
      input: Parameters<typeof checkpointPhase>[0] & { hostId?: string },
    ): Promise<{ here: false } | { here: true; result: Awaited<ReturnType<typeof checkpointPhase>> }> {
      const { hostId, ...args } = input;
      if (hostId !== undefined && typeof hostId !== 'string') {
        throw ApplicationFailure.create({
          type: 'InvalidActivityInput',
          message: `checkpointHere: hostId: expected a string, got ${typeof hostId}`,
          nonRetryable: true,
        });
      }
      if (hostId !== undefined && hostId !== config.host.id) return { here: false };
      return { here: true, result: await checkpointPhase(args) };
    },
    ...createHostActivities({ config, logger }),
    ...createGovernanceActivities({ logger, sandbox }),
    // The api backend brings @anthropic-ai/sdk (about 300 modules with its dependencies): loaded when an
    // api agent first runs, not by every worker start.
    ...lazyActivities<ApiActivities>(['apiTurn'], async () =>
      (await import('./api')).createApiActivities({
        logger,
        anthropic: config.anthropic,
        outputsDir: config.outputsDir,
        gateway,
        sandbox,
        nudges: deps.nudges,
      }),
    ),
    ...createMeterActivities({ logger, outputsDir: config.outputsDir }),
    // Only api agents call tools, and their backend (above) has loaded the tools themselves
    // (activities/tools/tools.ts, for its toolDefinitions) before the first call: a worker's start need not
    // build their schemas and definitions (~1% of its module loading).
    ...lazyActivities<ToolActivities>(['runTool'], async () =>
      (await import('./tools')).createToolActivities({ logger, sandbox, nudges: deps.nudges }),
    ),
    ...createCliActivities({
      logger,
      claudePath: config.claudePath,
      outputsDir: config.outputsDir,
      anthropic: config.anthropic,
      // Frequent heartbeats while the CLI is quiet, so a cancellation is noticed within a second or two.
      heartbeatIntervalMs: 1_000,
      gateway,
      env: baseEnv,
      agentHome: config.agentHome,
      sandbox,
      nudges: deps.nudges,
    }),
    ...createAuditActivities({ logger }),
    ...createTeamActivities({ logger }),
    ...createVisibilityActivities({
      indexedSearchAttributes: deps.indexedSearchAttributes ?? (() => Promise.resolve([])),
    }),
  };
}

export type Activities = ReturnType<typeof createActivities>;

type AsyncFunction = (...args: never[]) => Promise<unknown>;

/**
 * Activities whose module is imported on their first call (once; a failed import is tried again on
 * the next call). `names` are registered with the worker at once, so nothing about the task queue
 * changes: only the module's loading moves from the worker's start to the first task that needs it.
 */
export function lazyActivities<T extends Record<string, AsyncFunction>>(
  names: (keyof T & string)[],
  load: () => Promise<T>,
): T {
  let loaded: Promise<T> | undefined;
  const get = (): Promise<T> =>
    (loaded ??= load().catch((err: unknown) => {
      loaded = undefined;
      throw err;
    }));
  const out: Partial<Record<keyof T, AsyncFunction>> = {};
  for (const name of names) {
    out[name] = async (...args: never[]) => {
      const fn: AsyncFunction | undefined = (await get())[name];
      if (!fn) throw new Error(`activity ${name} is missing from its module`);
      return fn(...args);
    };
  }
  return out as T;
}

/**
 * The activities of agent turns: workflows schedule them on `<queue>-agents` (src/shared/names
 * agentTaskQueue), where the worker gives them room of their own. The worker's main queue registers them
 * too, for turns scheduled there before the queues were split.
 */
export const AGENT_TURN_ACTIVITIES = ['scriptTurn', 'claudeTurn', 'apiTurn', 'runTool'] as const;

/** The agent-turn subset of `activities`, for the worker on `<queue>-agents`. */
export function agentTurnActivities(
  activities: Activities,
): Pick<Activities, (typeof AGENT_TURN_ACTIVITIES)[number]> {
  return {
    scriptTurn: activities.scriptTurn.bind(activities),
    claudeTurn: activities.claudeTurn,
    apiTurn: activities.apiTurn,
    runTool: activities.runTool,
  };
}
