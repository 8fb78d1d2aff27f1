/**
 * `agentWorkflow`: one agent's lifecycle, INITIALIZE → PLAN → ACT → SUMMARIZE → COMPLETE, each step
 * visible in the `status` query. A child of the phase that runs it; its workflow id is
 * `<runId>/<phase>/<agent>`.
 *
 * Backends: `script` (an argv in the workspace), `cli` (the real `claude` CLI; PLAN, ACT and SUMMARIZE are
 * turns of one session, resumed turn after turn and across worker crashes) and `api` (Messages API turns
 * with a tool loop, each tool call its own activity). Routing: `ai` runs the model backend, `static` the
 * script, `hybrid` the model backend and then the script if that failed.
 */
import { Visibility } from './visibility';
import { agentAttributes, agentDetails } from '../src/shared/visibility';
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxySinks,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  countsAgainstAgent,
  DEFAULT_AGENT_ATTEMPTS,
  agentTurnHeartbeatTimeout,
  isFailureType,
  retryPolicy,
} from '../src/shared/failures';
import {
  agentBudgetLimitsSignal,
  MeterLimitsMessageSchema,
  agentBudgetPausedSignal,
  agentStatusQuery,
  type AgentWorkflowStatus,
  type MeterLimitsMessage,
} from '../src/shared/messages';
import { agentTurnQueue, type TurnHost } from './agent-queue';
import { isHostLost } from './host-lost';
import { signalInput } from './signal-input';
import type { AgentTurnSinks } from '../src/shared/sinks';
import { addUsage, type AgentResult, type AgentStep, type Usage, ZERO_USAGE } from '../src/shared/run';
import { methodologySection } from '../src/shared/skills';
import type { AgentSpec } from '../src/shared/spec';

export interface AgentWorkflowInput {
  runId: string;
  phase: string;
  agent: AgentSpec & { id: string };
  workspace: string;
  /** The phase preset's system prompt and the project's requirements, for model agents. */
  phasePrompt: string;
  projectName: string;
  requirements: string[];
  /** Summaries of the earlier phases this phase receives (src/shared/handoff), for model agents. */
  handoff?: string;
  /** On a phase retried after failed gates: which gates failed and their output. */
  retryNote?: string;
  /** Output of the previous agent or batch, when the strategy passes outputs along. */
  passedOutput?: string;
  /** Environment every agent process gets (ORCHESTRATOR_RUN_ID, ORCHESTRATOR_AGENT_ID, …). */
  env: Record<string, string>;
  /** What is left of this agent's budget; the cli backend gets it as `--max-budget-usd` when unmetered. */
  maxBudgetUsd?: number;
  /**
   * The meter this agent start spends on (`outputs/<run>/meter/<id>.jsonl`) and the limits every one of
   * its model requests is admitted under. Set by the run; without it the agent is metered under its file id.
   */
  meter?: { id: string; limits: MeterLimitsMessage };
  /**
   * Heartbeat timeout of this agent's turns in seconds (the run's `constraints.agent_heartbeat_timeout_s`);
   * unset: AGENT_TURN_HEARTBEAT_TIMEOUT.
   */
  turnHeartbeatTimeoutS?: number;
  /** The run's outputs folder, decided at run start: transcripts and logs go there, whatever the
   * worker's own ORCHESTRATOR_OUTPUTS_DIR or working directory. */
  outputsDir?: string;
  /** What a budget refusal does: `pause` waits in place (same session) for new limits; `fail` ends the agent. */
  onBudgetExceeded?: 'pause' | 'fail';
  /**
   * The search attributes the namespace has, as the parent learned them: the child need not ask again.
   * Absent (older parents, other callers): the child asks.
   */
  indexedAttributes?: string[];
  /** The run's host: the agent's turns go to its queue (workflows/project/hosts). Absent: the shared one. */
  host?: TurnHost;
}

/** Failure type of a model turn stopped by a budget (activities/meter BUDGET_EXCEEDED). */
const BUDGET_EXCEEDED = 'BudgetExceeded';

/**
 * Patch id: an agent that fails for good ends as a failed workflow, its classified failure the cause and
 * its result in the failure's details (issue #13). Before it, the workflow completed with `status:
 * failed` inside its result.
 */
export const AGENT_HONEST_OUTCOMES_PATCH = 'agent-honest-outcomes';

/** The failure a failed agent's workflow ends with: typed by the agent's classified failure. */
export function agentFailedError(result: AgentResult): ApplicationFailure {
  return ApplicationFailure.create({
    type: isFailureType(result.errorType) ? result.errorType : 'AgentFailed',
    message: `agent ${result.agentId} failed: ${(result.error ?? 'unknown error').slice(0, 500)}`,
    nonRetryable: true,
    details: [result],
  });
}

/** The result a failed agent's workflow carried in its failure (see `agentFailedError`), if any. */
export function failedAgentResult(err: unknown): AgentResult | undefined {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const first: unknown = Array.isArray(cause.details) ? cause.details[0] : undefined;
  if (!first || typeof first !== 'object') return undefined;
  const r = first as Partial<AgentResult>;
  return typeof r.agentId === 'string' && r.status === 'failed' && typeof r.startedAt === 'string'
    ? (r as AgentResult)
    : undefined;
}

/** Prefixed to the prompt of a turn resumed after its budget was raised. */
export const BUDGET_RESUME_NOTE =
  'Note: this request was interrupted because the budget ran out; it has been raised. Continue where you left off.\n\n';

/** The meter part of a model turn's input, and what to do when a budget refuses a request. */
interface Metering {
  meter: () => { id: string; phase: string; agent: string; limits: MeterLimitsMessage } | undefined;
  /** After a budget refusal: true once new limits arrived (run the turn again), false to fail the agent. */
  waitForRaise: (err: unknown) => Promise<boolean>;
}

/** A file-safe id for outputs/<run>/agents/<fileId>.*: phase and agent id joined. */
export function agentFileId(phase: string, agentId: string): string {
  return `${phase}-${agentId}`;
}

/** The child workflow id of an agent: stable, so a replay or retry finds the same child. */
export function agentWorkflowId(runId: string, phase: string, agentId: string): string {
  return `${runId}/${phase}/${agentId}`;
}

/** How much of an agent's summary its result keeps (the end of it). */
export const SUMMARY_CAP = 600;

/**
 * Set explicitly: left unset, the SDK sends proto default 0 (TRY_CANCEL) whatever its docs say, and a
 * cancelled agent would report "cancelled" while its process keeps running. Waiting means a rollback or
 * a run cancel returns only after the activity has ended its process group.
 */
const WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;

const { agentTurns } = proxySinks<AgentTurnSinks>();

// Turns run on `<queue>-agents` (./agent-queue), so the proxies are made per call.
// Retries by cause (src/shared/failures): infrastructure failures, including a lost worker noticed by the
// heartbeat timeout, retry without limit; the agent's own failures are counted below, per agent attempt.
// The heartbeat timeout is the run's own (`constraints.agent_heartbeat_timeout_s`) when it set one.
const script = (host?: TurnHost, heartbeatS?: number) =>
  proxyActivities<Pick<Activities, 'scriptTurn'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: agentTurnHeartbeatTimeout(heartbeatS),
    cancellationType: WAIT,
    retry: retryPolicy(),
  });
const model = (host?: TurnHost, heartbeatS?: number) =>
  proxyActivities<Pick<Activities, 'claudeTurn' | 'apiTurn'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: agentTurnHeartbeatTimeout(heartbeatS),
    cancellationType: WAIT,
    // The activities type their failures; a 429's retry-after becomes the failure's nextRetryDelay, which
    // overrides this backoff.
    retry: retryPolicy({ maximumInterval: '1 minute' }),
  });
const tools = (host?: TurnHost, heartbeatS?: number) =>
  proxyActivities<Pick<Activities, 'runTool'>>({
    ...agentTurnQueue(host),
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: agentTurnHeartbeatTimeout(heartbeatS),
    cancellationType: WAIT,
    retry: retryPolicy(),
  });

/** Where a cli agent is in its three turns, kept across the agent's attempts. */
interface CliProgress {
  nextTurn: number;
  previous: {
    cost: number;
    usage?: { inputTokens: number; outputTokens: number; cacheRead: number; cacheCreation: number };
  };
}

export interface TurnOutcome {
  ok: boolean;
  summary: string;
  outputRef?: string;
  usage: Usage;
  costUsd: number;
  models?: AgentResult['models'];
  sessionId?: string;
  error?: string;
  /** The failure type (src/shared/failures), when the outcome is a failure. */
  errorType?: string;
  refusedTools?: AgentResult['refusedTools'];
}

/**
 * Claude Code's tool names and the api tools that do the same: a role's `allowed_tools` (the presets
 * speak Claude Code's names) binds an api agent the same way. `Read` reads and looks around, `Write` and
 * `Edit` write files, `Bash` runs commands (git included).
 */
export const CLI_TOOL_EQUIVALENTS: Readonly<Record<string, readonly string[]>> = {
  Read: ['read_file', 'list_files', 'search', 'sql'],
  Glob: ['list_files'],
  LS: ['list_files'],
  Grep: ['search'],
  Write: ['write_file'],
  Edit: ['write_file'],
  MultiEdit: ['write_file'],
  Bash: ['run_command', 'git'],
};

/**
 * The api tools an agent may call: its `tools` (the registry's names, as a role selects them), else
 * `allowed_tools` (default all), minus `disallowed_tools`. With `aliases`, Claude Code's names in either
 * list stand for their api equivalents.
 */
export function allowedApiTools(
  agent: Pick<AgentSpec, 'allowed_tools' | 'disallowed_tools' | 'tools'>,
  all: readonly string[],
  aliases = false,
): string[] {
  const expand = (names: readonly string[]) =>
    aliases ? names.flatMap((n) => [n, ...(CLI_TOOL_EQUIVALENTS[n] ?? [])]) : names;
  const listed = agent.tools ?? expand(agent.allowed_tools ?? all);
  const refused = expand(agent.disallowed_tools ?? []);
  return all.filter((t) => listed.includes(t) && !refused.includes(t));
}

/** Every api tool (activities/tools TOOL_NAMES; repeated here because workflows import no activity code). */
export const API_TOOL_NAMES = [
  'read_file',
  'write_file',
  'list_files',
  'search',
  'run_command',
  'git',
  'sql',
];

/** Refused tool calls reported in the result (and so in the audit): enough to see what was tried. */
const REFUSALS_KEPT = 20;

export async function agentWorkflow(input: AgentWorkflowInput): Promise<AgentResult> {
  const { agent } = input;
  const startedAt = new Date().toISOString();
  const status: AgentWorkflowStatus = {
    agentId: agent.id,
    role: agent.role,
    step: 'INITIALIZE',
    turns: 0,
    costUsd: 0,
  };
  setHandler(agentStatusQuery, () => status);
  // A cancellation (rollback, stopped run) reaches the running turn at its next heartbeat; this tells the
  // worker to make that heartbeat now (activities/turn-heartbeat). No command, no history: a hint.
  CancellationScope.current().cancelRequested.catch(() => agentTurns.cancelRequested());
  const visibility = new Visibility();
  await visibility.init(input.indexedAttributes);
  const show = (state: string) =>
    visibility.publish(
      agentAttributes({ runId: input.runId, phase: input.phase, role: agent.role }, state, status.costUsd),
      agentDetails(status),
    );
  show('running');
  const step = (s: AgentStep) => {
    status.step = s;
  };
  const fileId = agentFileId(input.phase, agent.id);
  const routing = agent.routing ?? (agent.backend === 'script' ? 'static' : 'ai');
  // Spend accumulates across attempts of every backend tried: money spent is spent.
  const spent = { usage: { ...ZERO_USAGE }, costUsd: 0 };
  const finish = (o: TurnOutcome, final: AgentStep): AgentResult => {
    step(final);
    show(o.ok ? 'completed' : 'failed');
    return {
      agentId: agent.id,
      role: agent.role,
      backend: agent.backend,
      status: o.ok ? 'completed' : 'failed',
      summary: o.summary.slice(-SUMMARY_CAP),
      outputRef: o.outputRef,
      usage: spent.usage,
      costUsd: round6(spent.costUsd),
      models: o.models,
      sessionId: o.sessionId,
      error: o.error,
      ...(o.ok ? {} : { errorType: o.errorType }),
      ...(status.attempt !== undefined ? { attempts: status.attempt } : {}),
      ...(o.refusedTools?.length ? { refusedTools: o.refusedTools } : {}),
      startedAt,
      completedAt: new Date().toISOString(),
    };
  };
  const account = (o: Pick<TurnOutcome, 'usage' | 'costUsd'>) => {
    spent.usage = addUsage(spent.usage, o.usage);
    spent.costUsd += o.costUsd;
    status.costUsd = round6(spent.costUsd);
  };
  let limits: MeterLimitsMessage = input.meter?.limits ?? {};
  let limitsVersion = 0;
  setHandler(agentBudgetLimitsSignal, (raw) => {
    const l = signalInput('budgetLimits', MeterLimitsMessageSchema, raw, { agentId: agent.id });
    if (!l) return;
    limits = l;
    limitsVersion += 1;
  });
  const metering: Metering = {
    meter: () =>
      input.meter ? { id: input.meter.id, phase: input.phase, agent: agent.id, limits } : undefined,
    async waitForRaise(err) {
      const parent = workflowInfo().parent;
      const cause = err instanceof ActivityFailure ? err.cause : undefined;
      if (
        !input.meter ||
        input.onBudgetExceeded !== 'pause' ||
        !parent ||
        !(cause instanceof ApplicationFailure) ||
        cause.type !== BUDGET_EXCEEDED
      ) {
        return false;
      }
      const refusal = (failureSummary(err) as { budgetRefusal?: { level?: string; unit?: string } })
        ?.budgetRefusal;
      const seen = limitsVersion;
      // The run pauses and names the limit; this agent keeps its session and conversation and waits.
      await getExternalWorkflowHandle(parent.workflowId).signal(agentBudgetPausedSignal, {
        workflowId: workflowInfo().workflowId,
        phase: input.phase,
        agent: agent.id,
        reason: cause.message,
        level: refusal?.level === 'run' || refusal?.level === 'phase' ? refusal.level : 'agent',
        unit: refusal?.unit === 'tokens' ? 'tokens' : 'usd',
      });
      await condition(() => limitsVersion > seen);
      return true;
    },
  };

  // Histories recorded before agents had attempts of their own ran each agent once.
  const maxAttempts = patched('agent-attempts') ? (agent.max_attempts ?? DEFAULT_AGENT_ATTEMPTS) : 1;
  const cliProgress: CliProgress = { nextTurn: 0, previous: { cost: 0 } };
  for (let attempt = 1; ; attempt++) {
    if (maxAttempts > 1) status.attempt = attempt;
    let outcome: TurnOutcome;
    try {
      outcome = await attemptOnce(attempt);
    } catch (err) {
      if (isCancellation(err)) {
        step('CANCELLED');
        throw err;
      }
      // The run's host is gone: not the agent's failure; the run moves and starts the phase again.
      if (isHostLost(err)) throw err;
      outcome = {
        ok: false,
        summary: '',
        usage: ZERO_USAGE,
        costUsd: 0,
        error: describe(err),
        errorType: failureType(err),
      };
    }
    if (agentDone(outcome, attempt, maxAttempts)) {
      const result = finish(outcome, outcome.ok ? 'COMPLETE' : 'FAILED');
      // Red in the Web UI, the classified failure as its cause; the phase reads the result from it.
      if (!outcome.ok && patched(AGENT_HONEST_OUTCOMES_PATCH)) throw agentFailedError(result);
      return result;
    }
    log.warn('agent attempt failed; trying again', {
      agentId: agent.id,
      attempt,
      maxAttempts,
      errorType: outcome.errorType,
      error: outcome.error?.slice(0, 300),
    });
  }

  /** One attempt of the agent: its backend (and the script fallback of `hybrid`). */
  async function attemptOnce(attempt: number): Promise<TurnOutcome> {
    let outcome: TurnOutcome | undefined;
    if (routing === 'ai' || routing === 'hybrid') {
      if (agent.backend === 'script') {
        throw ApplicationFailure.nonRetryable(
          `agent "${agent.id}": routing "${routing}" needs backend cli or api`,
          'InvalidAgent',
        );
      }
      outcome =
        agent.backend === 'cli'
          ? await runCli(input, fileId, step, status, account, cliProgress, attempt, metering)
          : await runApi(input, fileId, step, status, account, metering);
    }
    if (routing === 'static' || (routing === 'hybrid' && !outcome?.ok)) {
      if (!agent.command) {
        if (outcome) return outcome;
        throw ApplicationFailure.nonRetryable(`agent "${agent.id}" has no script command`, 'InvalidAgent');
      }
      step('ACT');
      const fallbackNote = outcome
        ? `model backend failed (${outcome.error ?? 'unknown'}); script fallback `
        : '';
      outcome = await scriptOutcome(input, agent.command, fileId, fallbackNote);
      status.turns += 1;
      step('SUMMARIZE');
    }
    if (!outcome)
      throw ApplicationFailure.nonRetryable(`agent "${agent.id}": nothing to run`, 'InvalidAgent');
    return outcome;
  }
}

/**
 * A script agent's turn: its command run in the workspace by the scriptTurn activity, as an outcome. An
 * exit other than 0 is the agent's own failure (`AgentExited`, counted against its attempts).
 */
export async function scriptOutcome(
  input: AgentWorkflowInput,
  command: string[],
  fileId: string,
  fallbackNote = '',
): Promise<TurnOutcome> {
  const { agent } = input;
  const r = await script(input.host, input.turnHeartbeatTimeoutS).scriptTurn({
    runId: input.runId,
    agentId: fileId,
    ...(input.outputsDir ? { outputsDir: input.outputsDir } : {}),
    workspace: input.workspace,
    command,
    env: {
      ...input.env,
      ...agent.env,
      ...(input.passedOutput ? { ORCHESTRATOR_PASSED_OUTPUT: input.passedOutput } : {}),
    },
    timeoutS: agent.timeout_s ?? 600,
  });
  return {
    ok: r.ok,
    summary: r.summary,
    outputRef: r.outputRef,
    usage: { ...ZERO_USAGE },
    costUsd: 0,
    error: r.ok
      ? undefined
      : `${fallbackNote}script exited with code ${r.exitCode}: ${r.summary.slice(-300)}`,
    ...(r.ok ? {} : { errorType: 'AgentExited' }),
  };
}

/** Whether an agent is done after this attempt: it succeeded, it has no attempts left, or its failure
 * is not its own (input, config, budget: another attempt would fail the same way). */
export function agentDone(
  outcome: Pick<TurnOutcome, 'ok' | 'errorType'>,
  attempt: number,
  maxAttempts: number,
): boolean {
  return outcome.ok || attempt >= maxAttempts || !countsAgainstAgent(outcome.errorType);
}

/** The instructions every model agent gets appended to its system prompt. */
function systemPrompt(input: AgentWorkflowInput): string {
  const { agent } = input;
  return [
    // The local model server and human readers both look for these two lines.
    `Role: ${agent.role}`,
    `Phase: ${input.phase}`,
    `Project: ${input.projectName}`,
    input.requirements.length ? `Requirements:\n${input.requirements.map((r) => `- ${r}`).join('\n')}` : '',
    input.phasePrompt,
    agent.system_prompt ?? '',
    input.handoff ?? '',
    // Applied skills (resolved at run start): their methodology as ordered steps.
    methodologySection(agent.applied_skills ?? []),
  ]
    .filter(Boolean)
    .join('\n\n');
}

function taskPrompt(input: AgentWorkflowInput): string {
  const task = input.agent.prompt ?? `Do the ${input.phase} work for this project in the current directory.`;
  const base = input.retryNote ? `${input.retryNote}\n\n${task}` : task;
  return input.passedOutput ? `${base}\n\nOutput of the previous step:\n${input.passedOutput}` : base;
}

type Account = (o: Pick<TurnOutcome, 'usage' | 'costUsd'>) => void;

/** cli backend: PLAN, ACT and SUMMARIZE are three turns of one `claude` session. */
async function runCli(
  input: AgentWorkflowInput,
  fileId: string,
  step: (s: AgentStep) => void,
  status: AgentWorkflowStatus,
  account: Account,
  progress: CliProgress,
  attempt: number,
  metering: Metering,
): Promise<TurnOutcome> {
  const { agent } = input;
  // The run id is a UUID unique to this execution: a re-run after a rollback (same workflow id, new run)
  // gets a new session, while activity retries, agent attempts and replays keep this one.
  const sessionId = workflowInfo().runId;
  status.sessionId = sessionId;
  const turns: { step: AgentStep; prompt: string }[] = [
    { step: 'PLAN', prompt: `${taskPrompt(input)}\n\nFirst write a short plan of the steps you will take.` },
    { step: 'ACT', prompt: 'Carry out the plan now: make the changes in the working directory.' },
    { step: 'SUMMARIZE', prompt: 'Summarize in at most five lines what you changed and what is left.' },
  ];
  let last: Awaited<ReturnType<Activities['claudeTurn']>> | undefined;
  // A later attempt resumes the session at the turn that failed; earlier turns' work is in the session.
  for (const [i, turn] of turns.entries()) {
    if (i < progress.nextTurn) continue;
    step(turn.step);
    // After a budget refusal the same turn runs again in the same session once limits are raised.
    let resumed = false;
    for (;;) {
      const previous = progress.previous;
      try {
        last = await model(input.host, input.turnHeartbeatTimeoutS).claudeTurn({
          runId: input.runId,
          agentId: fileId,
          ...(input.outputsDir ? { outputsDir: input.outputsDir } : {}),
          sessionId,
          resume: i > 0 || attempt > 1 || resumed,
          ...(attempt > 1 ? { agentAttempt: attempt } : {}),
          ...(agent.timeout_s !== undefined ? { timeoutS: agent.timeout_s } : {}),
          ...(agent.hang_after_s !== undefined ? { hangAfterS: agent.hang_after_s } : {}),
          prompt: resumed ? BUDGET_RESUME_NOTE + turn.prompt : turn.prompt,
          cwd: input.workspace,
          model: agent.model,
          maxTurns: agent.max_turns,
          // Metered agents are held to their limits per request by the gateway, not by the CLI's own sum.
          ...(input.meter ? {} : { maxBudgetUsd: input.maxBudgetUsd }),
          appendSystemPrompt: systemPrompt(input),
          allowedTools: agent.allowed_tools,
          disallowedTools: agent.disallowed_tools,
          permissionMode: agent.permission_mode ?? 'acceptEdits',
          agents: agent.subagents,
          extraEnv: { ...input.env, ...agent.env },
          previousSessionCostUsd: previous.cost,
          previousSessionUsage: previous.usage,
          ...(metering.meter() ? { meter: metering.meter() } : {}),
        });
        break;
      } catch (err) {
        // A failed turn still cost money: its summary rides in the failure's details.
        const summary = failureSummary(err);
        if (summary) {
          account({ usage: toUsage(summary.usage), costUsd: summary.costUsd ?? 0 });
          // The session's totals moved on: the next attempt's cost is a delta from here.
          if (summary.totalCostUsd !== undefined)
            progress.previous = { cost: summary.totalCostUsd, usage: summary.sessionUsage ?? previous.usage };
        }
        if (isCancellation(err) || isHostLost(err)) throw err;
        if (await metering.waitForRaise(err)) {
          resumed = true;
          continue;
        }
        return {
          ok: false,
          summary: '',
          usage: ZERO_USAGE,
          costUsd: 0,
          sessionId,
          error: describe(err),
          errorType: failureType(err),
          outputRef: summary?.transcriptPath,
        };
      }
    }
    account({ usage: toUsage(last.usage), costUsd: last.costUsd });
    status.turns += last.numTurns;
    status.lastTool = last.lastTool ?? status.lastTool;
    progress.previous = { cost: last.totalCostUsd, usage: last.sessionUsage };
    progress.nextTurn = i + 1;
    if (!last.ok) {
      return {
        ok: false,
        summary: last.resultText,
        usage: ZERO_USAGE,
        costUsd: 0,
        sessionId,
        outputRef: last.transcriptPath,
        error: `${last.subtype}: ${last.resultText.slice(0, 300)}`,
        errorType: 'CliError',
      };
    }
  }
  const models: NonNullable<AgentResult['models']> = {};
  for (const [name, m] of Object.entries(last?.modelUsage ?? {})) {
    models[name] = {
      usage: {
        input_tokens: m.inputTokens ?? 0,
        output_tokens: m.outputTokens ?? 0,
        cache_read_input_tokens: m.cacheReadInputTokens ?? 0,
        cache_creation_input_tokens: m.cacheCreationInputTokens ?? 0,
      },
      costUsd: m.costUSD ?? 0,
    };
  }
  return {
    ok: true,
    summary: last?.resultText ?? '',
    usage: ZERO_USAGE,
    costUsd: 0,
    models,
    sessionId,
    outputRef: last?.transcriptPath,
  };
}

/** api backend: Messages API turns; each tool call the model makes is its own activity. */
async function runApi(
  input: AgentWorkflowInput,
  fileId: string,
  step: (s: AgentStep) => void,
  status: AgentWorkflowStatus,
  account: Account,
  metering: Metering,
): Promise<TurnOutcome> {
  const { agent } = input;
  const maxTurns = agent.max_turns ?? 20;
  type Block = { type: string; [k: string]: unknown };
  const messages: { role: 'user' | 'assistant'; content: string | Block[] }[] = [
    { role: 'user', content: taskPrompt(input) },
  ];
  const models: NonNullable<AgentResult['models']> = {};
  let text = '';
  let outputRef: string | undefined;
  // Histories recorded before allowed_tools was enforced ran every tool call the model made.
  const enforce = patched('api-allowed-tools');
  // Before 'api-tool-aliases', a role listing only Claude Code's names gave its api agent no tools.
  const allowed = enforce
    ? allowedApiTools(agent, API_TOOL_NAMES, patched('api-tool-aliases'))
    : API_TOOL_NAMES;
  const refusedTools: NonNullable<AgentResult['refusedTools']> = [];
  step('PLAN');
  for (let turn = 0; turn < maxTurns; turn++) {
    let r: Awaited<ReturnType<Activities['apiTurn']>>;
    try {
      r = await model(input.host, input.turnHeartbeatTimeoutS).apiTurn({
        runId: input.runId,
        agentId: fileId,
        ...(input.outputsDir ? { outputsDir: input.outputsDir } : {}),
        model: agent.model ?? 'claude-sonnet-5-5',
        system: systemPrompt(input),
        messages,
        tools: true,
        ...(enforce ? { allowedTools: allowed } : {}),
        maxTokens: 8192,
        ...(agent.timeout_s !== undefined ? { timeoutS: agent.timeout_s } : {}),
        ...(agent.hang_after_s !== undefined ? { hangAfterS: agent.hang_after_s } : {}),
        ...(metering.meter() ? { meter: metering.meter() } : {}),
      });
    } catch (err) {
      if (isCancellation(err) || isHostLost(err)) throw err;
      // Refused by a budget: nothing was served; once limits are raised the same turn is asked again.
      if (await metering.waitForRaise(err)) {
        turn -= 1;
        continue;
      }
      return {
        ok: false,
        summary: text,
        usage: ZERO_USAGE,
        costUsd: 0,
        error: describe(err),
        errorType: failureType(err),
        outputRef,
        models,
        refusedTools,
      };
    }
    const usage: Usage = {
      input_tokens: r.usage.input_tokens,
      output_tokens: r.usage.output_tokens,
      cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
      cache_read_input_tokens: r.usage.cache_read_input_tokens,
    };
    account({ usage, costUsd: r.costUsd });
    const m = (models[r.model] ??= { usage: { ...ZERO_USAGE }, costUsd: 0 });
    m.usage = addUsage(m.usage, usage);
    m.costUsd = round6(m.costUsd + r.costUsd);
    status.turns += 1;
    outputRef = r.transcriptPath;
    text = r.text || text;
    if (r.stop_reason !== 'tool_use' || r.tool_uses.length === 0) {
      step('SUMMARIZE');
      return { ok: true, summary: text, usage: ZERO_USAGE, costUsd: 0, outputRef, models, refusedTools };
    }
    step('ACT');
    messages.push({
      role: 'assistant',
      content: [
        ...(r.text ? [{ type: 'text', text: r.text }] : []),
        ...r.tool_uses.map((t) => ({ type: 'tool_use', id: t.id, name: t.name, input: t.input })),
      ],
    });
    const results = await Promise.all(
      r.tool_uses.map((t) => {
        // A tool the agent may not use is refused here, as an error the model reads; it never runs.
        if (enforce && !allowed.includes(t.name)) {
          if (refusedTools.length < REFUSALS_KEPT) refusedTools.push({ tool: t.name.slice(0, 100), turn });
          return Promise.resolve({
            ok: false,
            output: '',
            error: `tool "${t.name}" is not allowed for this agent (allowed: ${allowed.join(', ') || 'none'})`,
          });
        }
        return tools(input.host, input.turnHeartbeatTimeoutS).runTool({
          workspace: input.workspace,
          name: t.name,
          input: t.input,
          ...(enforce ? { allowedTools: allowed } : {}),
        });
      }),
    );
    status.lastTool = r.tool_uses[r.tool_uses.length - 1]?.name;
    messages.push({
      role: 'user',
      content: results.map((res, k) => ({
        type: 'tool_result',
        tool_use_id: r.tool_uses[k]!.id,
        content: res.ok ? res.output || '(no output)' : `error: ${res.error ?? 'failed'}`,
        is_error: !res.ok,
      })),
    });
  }
  return {
    ok: false,
    summary: text,
    usage: ZERO_USAGE,
    costUsd: 0,
    error: `MaxTurnsExceeded: ${maxTurns} turns`,
    errorType: 'MaxTurnsExceeded',
    outputRef,
    models,
    refusedTools,
  };
}

interface FailureSummary {
  costUsd?: number;
  usage?: { inputTokens: number; outputTokens: number; cacheRead: number; cacheCreation: number };
  totalCostUsd?: number;
  sessionUsage?: { inputTokens: number; outputTokens: number; cacheRead: number; cacheCreation: number };
  transcriptPath?: string;
}

function failureSummary(err: unknown): FailureSummary | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const details = (cause as { details?: unknown[] } | undefined)?.details;
  const first = Array.isArray(details) ? details[0] : undefined;
  return first && typeof first === 'object' ? first : undefined;
}

function toUsage(u: FailureSummary['usage']): Usage {
  if (!u) return { ...ZERO_USAGE };
  return {
    input_tokens: u.inputTokens,
    output_tokens: u.outputTokens,
    cache_read_input_tokens: u.cacheRead,
    cache_creation_input_tokens: u.cacheCreation,
  };
}

/** The ApplicationFailure type behind an activity failure; undefined for timeouts and plain errors. */
export function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

export function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  if (cause instanceof Error) return cause.message;
  return String(err);
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
