/**
 * Client-side operations on team runs (`teamWorkflow`), shared by the CLI, the benchmark and the tests.
 * Other services can do the same with a Temporal client: the messages are in src/shared/team.ts.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type Client,
  ServiceError,
  type WorkflowHandle,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, type UpdateDefinition } from '@temporalio/common';
import { newRunId } from './runs';
import { readRun } from './run-record';
import { holdWorkspace } from './workspace-hold';
import { RUN_WORKFLOW_TASK_TIMEOUT, type FailureType } from './shared/failures';
import { capabilityProof, OPERATOR, type CapabilityPurpose } from './shared/identity';
import { DEFAULT_TASK_QUEUE, WorkflowType } from './shared/names';
import type { BudgetLimit } from './shared/spec';
import {
  requestAgentUpdate,
  sendMessageUpdate,
  spawnAgentSignal,
  spawnRefusedSignal,
  stopTeamSignal,
  taskDoneUpdate,
  teamAgentWorkflowId,
  teamDir,
  teamAgentStatusQuery,
  teamStatusQuery,
  TeamWorkflowInputSchema,
  type MessageRequest,
  type MessageResult,
  type SpawnRequest,
  type SpawnResult,
  type TaskDoneRequest,
  type TaskDoneResult,
  type TeamBackend,
  type TeamPolicy,
  type TeamStatus,
  type TeamWorkflowInput,
} from './shared/team';

/** How long {@link executeUpdateSurely} asks again for an update whose calls time out. */
const UPDATE_RETRY_MS = 300_000;

/**
 * Runs an update to its outcome, asking again under the same update id when a call times out. On a loaded
 * server an update that was admitted but not yet delivered is dropped when the workflow's state is
 * reloaded (a workflow task that timed out), and the caller sees only the timeout. Under the same id a
 * retry is idempotent: the server answers an update it knows with its outcome and delivers a lost one.
 * An agent's proof chain depends on it: a request lost after its proof was computed would be followed by
 * one whose proof is a step ahead, refused as a spoof attempt.
 */
export async function executeUpdateSurely<Ret, Args extends [unknown, ...unknown[]]>(
  handle: WorkflowHandle,
  def: UpdateDefinition<Ret, Args>,
  args: Args,
  retryMs = UPDATE_RETRY_MS,
): Promise<Ret> {
  const updateId = randomUUID();
  const deadline = Date.now() + retryMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await handle.executeUpdate(def, { args, updateId });
    } catch (err) {
      if (!(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || updateDropped(err))) throw err;
      if (Date.now() > deadline) throw err;
      await delay(Math.min(2_000, 200 * attempt));
    }
  }
}

/** How often {@link requestAgent} sends a request again that a team continuing as new was too busy to queue. */
const TEAM_BUSY_ATTEMPTS = 30;

/** The team was draining for continue-as-new with its queue full: the request can be sent again. */
function isTeamBusy(err: unknown): boolean {
  return (
    err instanceof WorkflowUpdateFailedError &&
    err.cause instanceof ApplicationFailure &&
    err.cause.type === ('TeamBusy' satisfies FailureType)
  );
}

/**
 * The server dropped an update because the workflow task that carried it failed (FAILED_PRECONDITION):
 * on a loaded worker that task may have timed out. The update was never accepted, so asking again under
 * the same id is safe.
 */
function updateDropped(err: unknown): boolean {
  // gRPC status 9; the Temporal client does not re-export grpc-js's status enum.
  const GRPC_FAILED_PRECONDITION = 9;
  const cause = err instanceof ServiceError ? err.cause : undefined;
  const grpc = cause as { code?: unknown; details?: unknown } | undefined;
  return grpc?.code === GRPC_FAILED_PRECONDITION && String(grpc.details).includes('workflow task failure');
}

/** A user-facing team error (the CLI prints its message on one line). */
export class TeamError extends Error {
  override readonly name = 'TeamError';
}

/** The validator of `requestAgent` refused the request; `reason` says why. */
export class SpawnRefusedError extends TeamError {
  constructor(readonly reason: string) {
    super(`request refused: ${reason}`);
  }
}

export interface StartTeamOptions {
  goal: string;
  workspace: string;
  outputsDir: string;
  policy: TeamPolicy;
  engineers?: number;
  interns?: number;
  backend?: TeamBackend;
  /** Replaces the generated instructions of the agents the team starts with, by role. */
  instructions?: Record<string, string>;
  taskQueue?: string;
  runId?: string;
  /** What the whole team may spend (`--max-usd`, `--max-tokens`). */
  budget?: BudgetLimit;
  /** Where the team continues as new (history events, bytes); defaults in src/shared/team-carry. */
  continueAsNewAt?: { events?: number; bytes?: number };
}

/**
 * Validates the input and starts `teamWorkflow` with workflow id = run id. A workspace that holds the
 * `.team/` of an earlier, finished team has it moved to `.team-<thatRunId>/`; one used by a running team
 * is refused.
 */
export async function startTeam(client: Client, opts: StartTeamOptions): Promise<TeamWorkflowInput> {
  const workspace = path.resolve(opts.workspace);
  // Validated before the workspace is created: a bad run id must not leave anything behind.
  const input = TeamWorkflowInputSchema.parse({
    runId: opts.runId ?? newRunId(`team-${opts.goal}`),
    goal: opts.goal,
    workspace,
    outputsDir: path.resolve(opts.outputsDir),
    engineers: opts.engineers ?? 0,
    interns: opts.interns ?? 0,
    backend: opts.backend ?? 'cli',
    policy: opts.policy,
    instructions: opts.instructions ?? {},
    ...(opts.budget && (opts.budget.usd !== undefined || opts.budget.tokens !== undefined)
      ? { budget: opts.budget }
      : {}),
    ...(opts.continueAsNewAt ? { continueAsNewAt: opts.continueAsNewAt } : {}),
  });
  await holdWorkspace(client, workspace, { runId: input.runId, kind: 'team' });
  await clearPreviousTeam(client, workspace);
  await client.workflow.start(WorkflowType.team, {
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    workflowId: input.runId,
    args: [input],
    memo: { goal: input.goal, workspace: input.workspace },
    // As runs: a busy worker replaying a big team after an eviction needs more than the default 10 s.
    workflowTaskTimeout: RUN_WORKFLOW_TASK_TIMEOUT,
  });
  return input;
}

async function clearPreviousTeam(client: Client, workspace: string): Promise<void> {
  const dir = teamDir(workspace);
  if (!fs.existsSync(dir) || fs.readdirSync(dir).length === 0) return;
  let previous: string | undefined;
  for (const entry of fs.readdirSync(dir)) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, entry, 'session.json'), 'utf8')) as {
        runId?: string;
      };
      if (s.runId) previous = s.runId;
      if (previous) break;
    } catch {
      // not an agent directory
    }
  }
  if (previous) {
    const running = await client.workflow
      .getHandle(previous)
      .describe()
      .then((d) => d.status.name === 'RUNNING')
      .catch(() => false);
    if (running) {
      throw new TeamError(
        `workspace ${workspace} is used by the running team run ${previous}: stop it (orchestrator team stop ${previous}) or choose another --workspace`,
      );
    }
  }
  let target = `${dir}-${previous ?? 'previous'}`;
  for (let i = 2; fs.existsSync(target); i++) target = `${dir}-${previous ?? 'previous'}-${i}`;
  fs.renameSync(dir, target);
}

/**
 * Checks that `runId` is a running team run, with a message that says what is wrong otherwise (no such
 * run, not a team run, finished).
 */
export async function ensureTeamRun(client: Client, runId: string, { running = true } = {}): Promise<void> {
  let desc;
  try {
    desc = await client.workflow.getHandle(runId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new TeamError(`no team run "${runId}" (is ORCHESTRATOR_RUN_ID right?)`);
    throw err;
  }
  if (desc.type !== WorkflowType.team)
    throw new TeamError(`run "${runId}" is a ${desc.type}, not a team run`);
  if (running && desc.status.name !== 'RUNNING') {
    throw new TeamError(`team run "${runId}" has ended (${desc.status.name.toLowerCase()})`);
  }
}

/**
 * Who an agent is, as its own process knows it: its id and its secret (`ORCHESTRATOR_AGENT_ID`,
 * `ORCHESTRATOR_AGENT_KEY`). Requests made with them carry proof of the agent's identity.
 */
export interface AgentCredentials {
  agentId: string;
  key: string;
}

/** The credentials in an agent's environment; undefined outside an agent (the operator's shell). */
export function agentCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): AgentCredentials | undefined {
  const agentId = env.ORCHESTRATOR_AGENT_ID;
  const key = env.ORCHESTRATOR_AGENT_KEY;
  return agentId && key ? { agentId, key: key.trim() } : undefined;
}

/**
 * The proof for an agent's next request of `purpose`: `team` (requests to the team, counted in the team's
 * status) or `agent` (taskDone, counted by the agent's own workflow). Undefined for teams without
 * capabilities.
 */
export async function nextProof(
  client: Client,
  runId: string,
  creds: AgentCredentials,
  purpose: CapabilityPurpose,
): Promise<string | undefined> {
  let used: number | undefined;
  if (purpose === 'team') {
    const s = await teamStatus(client, runId);
    const row = s.agents.find((a) => a.id === creds.agentId);
    // A team that issues capabilities shows proofsUsed on its agents; an unknown id starts at 0.
    const issues = s.agents.some((a) => a.proofsUsed !== undefined);
    if (!issues) return undefined;
    used = row?.proofsUsed ?? 0;
  } else {
    try {
      const st = await client.workflow
        .getHandle(teamAgentWorkflowId(runId, creds.agentId))
        .query(teamAgentStatusQuery);
      if (st.proofsUsed === undefined) return undefined;
      used = st.proofsUsed;
    } catch {
      used = 0;
    }
  }
  const proof = capabilityProof(creds.key, purpose, used);
  if (!proof) throw new TeamError(`agent ${creds.agentId} has used up its capability (${used} requests)`);
  return proof;
}

/** The request as sent: requester and proof from the credentials, when given. */
async function proven(
  client: Client,
  runId: string,
  req: Omit<SpawnRequest, 'requestedBy' | 'proof'> & Partial<Pick<SpawnRequest, 'requestedBy' | 'proof'>>,
  creds: AgentCredentials | undefined,
): Promise<SpawnRequest> {
  if (!creds) {
    if (!req.requestedBy)
      throw new TeamError(
        'who is asking? run this from inside an agent (ORCHESTRATOR_AGENT_ID and ORCHESTRATOR_AGENT_KEY)',
      );
    return { ...req, requestedBy: req.requestedBy };
  }
  const proof = await nextProof(client, runId, creds, 'team');
  return { ...req, requestedBy: creds.agentId, ...(proof ? { proof } : {}) };
}

/**
 * Requests a teammate with update `requestAgent`; resolves once the agent's workflow has started. With
 * `creds` (an agent's own), the request names that agent and carries its next proof; without, it is sent
 * as given (a raw request, as any client could send). A refusal (by policy, or a spoof attempt) is
 * recorded by the team and thrown as {@link SpawnRefusedError}. Retrying a request is safe: the team
 * answers a name it has seen with the same agent (`duplicate: true`) and starts nothing.
 */
export async function requestAgent(
  client: Client,
  runId: string,
  req: Omit<SpawnRequest, 'requestedBy'> & Partial<Pick<SpawnRequest, 'requestedBy'>>,
  creds?: AgentCredentials,
): Promise<SpawnResult> {
  await ensureTeamRun(client, runId);
  const handle = client.workflow.getHandle(runId);
  const sent = await proven(client, runId, req, creds);
  try {
    // A team that is continuing as new may be too full to queue the request (`TeamBusy`, decided before
    // the proof is checked): the same request goes again a moment later, to the next execution.
    for (let attempt = 1; ; attempt++) {
      try {
        return await executeUpdateSurely(handle, requestAgentUpdate, [sent]);
      } catch (err) {
        if (!isTeamBusy(err) || attempt >= TEAM_BUSY_ATTEMPTS) throw err;
        await delay(Math.min(2_000, 100 * attempt));
      }
    }
  } catch (err) {
    if (!(err instanceof WorkflowUpdateFailedError)) throw err;
    const reason = err.cause?.message ?? err.message;
    // Teams without capabilities refuse in the validator, which leaves no trace: report the refusal.
    if (!sent.proof) {
      await handle
        .signal(spawnRefusedSignal, {
          request: { role: sent.role, name: sent.name, requestedBy: sent.requestedBy },
          reason,
        })
        .catch(() => undefined);
    }
    throw new SpawnRefusedError(reason);
  }
}

/**
 * What happened to a request, in words: started, queued (the team was continuing as new: its next
 * execution starts the agent within moments), or requested before.
 */
export function spawnOutcome(r: Pick<SpawnResult, 'duplicate' | 'state'>): string {
  if (r.duplicate) return 'was requested before';
  return r.state === 'starting' ? 'was accepted and starts in a moment' : 'started';
}

/** Requests a teammate with signal `spawnAgent` (fire and forget; refusals land in the team's status). */
export async function spawnAgent(
  client: Client,
  runId: string,
  req: Omit<SpawnRequest, 'requestedBy'> & Partial<Pick<SpawnRequest, 'requestedBy'>>,
  creds?: AgentCredentials,
): Promise<void> {
  const sent = await proven(client, runId, req, creds);
  await client.workflow.getHandle(runId).signal(spawnAgentSignal, sent);
}

/**
 * Sends a message to a running agent of the team (update `sendMessage`); it reaches the agent's live
 * session as a new user turn. With `creds` (an agent's own) the message proves it comes from that agent.
 * Refused (thrown as {@link TeamError}) when the agent has ended or is unknown.
 */
export async function sendMessage(
  client: Client,
  runId: string,
  req: Omit<MessageRequest, 'from' | 'proof'>,
  creds?: AgentCredentials,
): Promise<MessageResult> {
  await ensureTeamRun(client, runId);
  // From an agent, the message names it and carries its next `team` proof; otherwise the operator's.
  const proof = creds ? await nextProof(client, runId, creds, 'team') : undefined;
  const sent: MessageRequest = creds
    ? { ...req, from: creds.agentId, ...(proof ? { proof } : {}) }
    : { ...req, from: OPERATOR };
  try {
    return await executeUpdateSurely(client.workflow.getHandle(runId), sendMessageUpdate, [sent]);
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError)
      throw new TeamError(`message not delivered: ${err.cause?.message ?? err.message}`);
    throw err;
  }
}

/**
 * Marks a task of an agent done (update `taskDone` on the agent's workflow). With `creds` the request
 * carries the agent's next proof; an agent can mark only its own tasks.
 */
export async function markTaskDone(
  client: Client,
  runId: string,
  agentId: string,
  req: TaskDoneRequest,
  creds?: AgentCredentials,
): Promise<TaskDoneResult> {
  const workflowId = teamAgentWorkflowId(runId, agentId);
  try {
    const proof = creds ? await nextProof(client, runId, { ...creds, agentId }, 'agent') : undefined;
    const sent = { ...req, ...(proof ? { proof } : {}) };
    return await executeUpdateSurely(client.workflow.getHandle(workflowId), taskDoneUpdate, [sent]);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      await ensureTeamRun(client, runId, { running: false });
      throw new TeamError(`team run "${runId}" has no agent "${agentId}"`);
    }
    if (err instanceof WorkflowUpdateFailedError) throw new TeamError(err.cause?.message ?? err.message);
    const msg = (err as Error).message ?? '';
    if (/already completed|completed|closed/i.test(msg)) throw new TeamError(`agent ${agentId} has finished`);
    throw err;
  }
}

/**
 * A team run's status: by query while a worker answers, else (for a closed team) from its recorded result
 * (teamWorkflow returns its final status), so a finished team, e.g. a rehearsal whose in-process worker
 * is gone, reads at once instead of waiting out a query no worker will take.
 */
export async function teamStatus(client: Client, runId: string): Promise<TeamStatus> {
  try {
    return await readRun(
      client,
      runId,
      () => client.workflow.getHandle(runId).query(teamStatusQuery),
      (rec) => recordedTeamStatus(rec.result),
    );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new TeamError(`no team run "${runId}"`);
    throw err;
  }
}

/** A closed team's final status, when its recorded result is one (a failed team recorded none). */
function recordedTeamStatus(result: unknown): TeamStatus | undefined {
  if (!result || typeof result !== 'object') return undefined;
  const r = result as Partial<TeamStatus>;
  return typeof r.runId === 'string' && Array.isArray(r.agents) && typeof r.state === 'string'
    ? (result as TeamStatus)
    : undefined;
}

export async function stopTeam(client: Client, runId: string, reason?: string): Promise<void> {
  await ensureTeamRun(client, runId);
  await client.workflow.getHandle(runId).signal(stopTeamSignal, { reason });
}

/** The most recently started team run. */
export async function latestTeamRunId(client: Client): Promise<string> {
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${WorkflowType.team}'` })) {
    return wf.workflowId;
  }
  throw new TeamError('no team runs yet: start one with `orchestrator team start "<goal>"`');
}

/**
 * The pid of each running agent's process, from the heartbeat of its workflow's pending activity (both
 * agent backends heartbeat `{ pid }` as soon as the process is spawned).
 */
export async function agentPids(client: Client, status: TeamStatus): Promise<Record<string, number>> {
  const running = status.agents.filter((a) => a.state === 'running');
  const pids = await Promise.all(
    running.map(async (a): Promise<[string, number | undefined]> => {
      try {
        const desc = await client.workflow.getHandle(a.workflowId).describe();
        for (const act of desc.raw.pendingActivities ?? []) {
          const payload = act.heartbeatDetails?.payloads?.[0];
          if (!payload) continue;
          const details = defaultPayloadConverter.fromPayload<{ pid?: unknown }>(payload);
          if (typeof details?.pid === 'number') return [a.id, details.pid];
        }
      } catch {
        // The agent finished between the status query and the describe.
      }
      return [a.id, undefined];
    }),
  );
  return Object.fromEntries(pids.filter((p): p is [string, number] => p[1] !== undefined));
}

/** Where an agent's transcript (cli: stream-json lines) or output (script) is written. */
export function transcriptPath(status: TeamStatus, agentId: string): string {
  return path.join(
    status.outputsDir,
    status.runId,
    'agents',
    `${agentId}.${status.backend === 'cli' ? 'jsonl' : 'log'}`,
  );
}
