/**
 * The `cli` agent backend: one agent turn = one headless `claude` run in the workspace.
 *
 * Sessions: the workflow picks the session id. The first attempt starts it (`--session-id`), later attempts
 * and later turns continue it (`--resume`). Two edges are repaired in-process, once each: `--session-id`
 * failing with "already in use" (a dead worker's attempt created the session) switches to `--resume`, and
 * `--resume` failing with "No conversation found" (killed before the transcript existed) switches to
 * `--session-id`.
 *
 * Orphans: the CLI runs in its own process group and every process of a turn carries a marker variable
 * (see ./process). Cancellation, timeout and worker shutdown end the group (SIGTERM, SIGKILL after a
 * grace period), then sweep marked leftovers. If the worker itself was SIGKILLed, the next attempt of the
 * activity (on a worker on this host) sweeps the session's leftovers before it starts, so two CLIs never
 * run the same session; the pgid is also in the heartbeat details for diagnosis.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { z } from 'zod';
import { ConfigError, formatZodIssues } from '../../config/errors';
import { buildClaudeArgs, CliSubagentSchema, type SessionMode, userLine } from '../../src/claude/args';
import { agentInboxQuery, messagePrompt, teamAgentWorkflowId } from '../../src/shared/team';
import { TEAM_MCP_SERVER, teamToolsAllowed } from '../team-tools/definitions';
import { createTeamToolHandler } from '../team-tools/handler';
import { createAgentGateway, newTurnKey } from '../team-tools/agent-gateway';
import {
  serveTeamTools,
  TEAM_AGENT_ENV,
  TEAM_KEY_FILE_ENV,
  TEAM_MCP_SCRIPT,
  TEAM_SOCKET_ENV,
  type TeamToolSocket,
} from '../team-tools/socket';
import {
  createStreamState,
  feedLine,
  sumModelUsage,
  type ModelUsage,
  type StreamState,
  type UsageTotals,
} from '../../src/claude/stream';
import { PermissionModeSchema } from '../../src/shared/spec';
import type { Logger } from '../../src/logger';
import type { Refusal } from '../../src/meter/admission';
import { crossCheckCost } from '../../src/meter/cross-check';
import type { MeterGateway, MeterHandle } from '../../src/meter/gateway';
import { BUDGET_EXCEEDED, MeterInputSchema, openMeter, runLimitsFrom } from '../meter';
import { redact } from '../../src/redact';
import { defaultSandbox, modelCredentialEnv, type Sandbox } from '../sandbox';
import { recordSandbox } from '../sandbox/record';
import { classifyCliFailure, type CliFailureClass } from './classify';
import {
  endEarlierAttempts,
  findProgram,
  Lease,
  leaseFile,
  previousLease,
  watchedCommand,
} from '../watchdog';
import { GROUP_GONE_MS, killGroupAndWait } from '../process-group';
import { loadExeca } from '../load-execa';
import { SESSION_MARKER_ENV, sweepSessionProcesses, terminateGroup } from './process';
import { TurnHeartbeat, type TurnNudges } from '../turn-heartbeat';
import { FileIdSchema, SafeNameSchema } from '../../src/shared/ids';
import { AGENT_KEY_ENV, capabilityEnvSync } from '../identity';

export { classifyCliFailure, CliFailureType, NON_RETRYABLE_CLI_FAILURES } from './classify';
export type { CliFailureClass, CliFailureFacts } from './classify';

const UsageTotalsSchema = z.object({
  inputTokens: z.number().nonnegative(),
  outputTokens: z.number().nonnegative(),
  cacheRead: z.number().nonnegative(),
  cacheCreation: z.number().nonnegative(),
});

/** Input of {@link CliActivities.claudeTurn}. */
export const ClaudeTurnInputSchema = z.object({
  runId: SafeNameSchema,
  /** File-safe: it names the transcript file. */
  agentId: FileIdSchema,
  /** The run's outputs folder (recorded at run start); default the worker's ORCHESTRATOR_OUTPUTS_DIR. */
  outputsDir: z.string().startsWith('/', 'must be an absolute path').optional(),
  /** Chosen by the workflow, stable across turns of one agent. */
  sessionId: z.uuid('must be a UUID'),
  /** True for every turn after the first of the session. */
  resume: z.boolean().default(false),
  prompt: z.string().min(1, 'must not be empty'),
  /** The workspace, absolute. */
  cwd: z.string().startsWith('/', 'must be an absolute path'),
  model: z.string().min(1).optional(),
  maxTurns: z.number().int().positive().optional(),
  maxBudgetUsd: z.number().positive().optional(),
  appendSystemPrompt: z.string().optional(),
  allowedTools: z.array(z.string().min(1)).optional(),
  disallowedTools: z.array(z.string().min(1)).optional(),
  permissionMode: PermissionModeSchema.optional(),
  /** Subagents, passed as `--agents <json>`. */
  agents: z.record(z.string().min(1), CliSubagentSchema).optional(),
  extraEnv: z.record(z.string(), z.string()).optional(),
  /** The agent's own attempt (agentWorkflow counts them); above 1 the turn is a retry of a failed one. */
  agentAttempt: z.number().int().positive().default(1),
  /** Wall-clock limit of the turn (the agent's `timeout_s`): past it the run is ended as hung. */
  timeoutS: z.number().positive().optional(),
  /** Seconds without output from the CLI before the run counts as hung; default from the worker. */
  hangAfterS: z.number().positive().optional(),
  /** A team agent's capability file: its secret goes into this process's environment only. */
  capabilityFile: z.string().startsWith('/').optional(),
  /** The session's `total_cost_usd` after its previous turn (0 for a new session). */
  previousSessionCostUsd: z.number().nonnegative().default(0),
  /** The session's cumulative token usage after its previous turn (the summary's `sessionUsage`). */
  previousSessionUsage: UsageTotalsSchema.optional(),
  /** The meter this turn spends on, and its limits; default: a meter named after `agentId`. */
  meter: MeterInputSchema.optional(),
  /**
   * A team agent: the run gets the team MCP server (tools act as this agent) and live input, so messages
   * the agent receives while it runs reach the session as new user turns.
   */
  team: z
    .object({
      runId: z.string().min(1),
      agentId: z.string().min(1),
      /** Messages up to this inbox seq were already given to the session (e.g. in the prompt). */
      afterSeq: z.number().int().nonnegative().default(0),
      /** How often the agent's inbox is polled while its process runs. */
      pollMs: z.number().int().positive().default(250),
    })
    .optional(),
});
export type ClaudeTurnInput = z.input<typeof ClaudeTurnInputSchema>;

/** What a turn returns (and what failures carry in `details[0]`). The transcript holds everything else. */
export interface ClaudeTurnSummary {
  sessionId: string;
  ok: boolean;
  /** The final result's subtype, or `none` when the run printed no result. */
  subtype: string;
  /** The final result text (or errors), capped at {@link RESULT_TEXT_CAP} characters. */
  resultText: string;
  numTurns: number;
  durationMs: number;
  /** Cumulative session cost as the CLI reports it (carried over on resume). */
  totalCostUsd: number;
  /**
   * This turn's cost: what the metering gateway recorded for it (every response served, priced on the
   * served model), or without a gateway totalCostUsd − previousSessionCostUsd.
   */
  costUsd: number;
  /** The same in integer micro-dollars, when metered. */
  microUsd?: number;
  /** The CLI's own figure for this turn (a cross-check of the meter). */
  cliCostUsd?: number;
  /** Set when the turn was stopped because a budget refused its next model request. */
  budgetRefusal?: Refusal;
  /** False when the run printed no result (killed): its cost shows up in the next turn's delta. */
  costKnown: boolean;
  /** This turn's tokens: sessionUsage − previousSessionUsage, never negative. */
  usage: UsageTotals;
  /** Cumulative session tokens over all models (from the result's modelUsage). */
  sessionUsage: UsageTotals;
  /** Cumulative per-model usage as the CLI reports it. */
  modelUsage: Record<string, ModelUsage>;
  model?: string;
  transcriptPath: string;
  stderrPath: string;
  lastTool?: string;
  exitCode?: number;
  /** How the session was opened by the run that produced this summary. */
  sessionMode: SessionMode;
  /** Team agents: the highest inbox seq given to the live session. */
  deliveredSeq?: number;
}

/** Heartbeat details: progress, plus the process group so a later attempt can tell what ran before. */
export const ClaudeHeartbeatSchema = z.object({
  sessionId: z.string(),
  attempt: z.number(),
  pid: z.number().optional(),
  pgid: z.number().optional(),
  turns: z.number(),
  lastTool: z.string().optional(),
  costUsd: z.number(),
  /** Real progress: bytes and stream-json lines received from the CLI, and when the last arrived. */
  bytes: z.number().optional(),
  lines: z.number().optional(),
  lastProgressAt: z.number().optional(),
  /** The attempt's lease (../watchdog): where it runs and when it last renewed. */
  host: z.string().optional(),
  leaseAt: z.number().optional(),
});
export type ClaudeHeartbeat = z.infer<typeof ClaudeHeartbeatSchema>;

export interface CliActivityDeps {
  logger: Logger;
  /** The `claude` binary: a path, or a name looked up on PATH. */
  claudePath: string;
  /** Run outputs root; transcripts go to `<outputsDir>/<runId>/agents/<agentId>.jsonl`. */
  outputsDir: string;
  anthropic: { apiKey?: string; baseURL?: string };
  /** Variables every run gets (Temporal's address, NO_COLOR); on top of the allow-listed environment. */
  env?: Record<string, string>;
  /**
   * HOME of the `claude` processes (Claude Code keeps its sessions under it); default the worker's HOME,
   * of which only `.claude/` and `.claude.json` stay writable inside the sandbox.
   */
  agentHome?: string;
  /** Confines `claude` (and so its Bash, Read and Write tools) to the workspace; default {@link defaultSandbox}. */
  sandbox?: Sandbox;
  /** SIGTERM → SIGKILL grace period; default 5 s. */
  killGraceMs?: number;
  /** Heartbeat (and lease renewal) interval while the CLI is quiet; default 1 s. */
  heartbeatIntervalMs?: number;
  /** Default for `hangAfterS`: a run with no output for this long is ended as hung; default 10 min. */
  hangAfterMs?: number;
  /** `--setting-sources` value; default `''` (no settings files). `null` omits the flag. */
  settingSources?: string | null;
  /** The metering gateway; without one the CLI calls the API directly and costs are the CLI's own. */
  gateway?: () => Promise<MeterGateway>;
  /** Nudges a turn whose agent workflow was cancelled into noticing at once (../turn-heartbeat). */
  nudges?: TurnNudges;
}

/** How long a refused CLI gets to end its turn by itself before its process group is ended. */
const REFUSAL_GRACE_MS = 5_000;

/** Characters of the result text kept in the summary. */
export const RESULT_TEXT_CAP = 2048;
const STDERR_TAIL_CHARS = 16_384;
/** Prefixed to the prompt when a retry resumes a session an interrupted attempt already wrote to. */
export const RETRY_NOTE =
  'Note: an earlier attempt at this request was interrupted before it finished. Check what is already done in the workspace, then complete the request.\n\n';

interface RunOutcome {
  summary: ClaudeTurnSummary;
  failure?: CliFailureClass;
  cancelled: boolean;
}

const ZERO_USAGE: UsageTotals = { inputTokens: 0, outputTokens: 0, cacheRead: 0, cacheCreation: 0 };

function usageDelta(now: UsageTotals, before: UsageTotals | undefined): UsageTotals {
  const b = before ?? ZERO_USAGE;
  return {
    inputTokens: Math.max(0, now.inputTokens - b.inputTokens),
    outputTokens: Math.max(0, now.outputTokens - b.outputTokens),
    cacheRead: Math.max(0, now.cacheRead - b.cacheRead),
    cacheCreation: Math.max(0, now.cacheCreation - b.cacheCreation),
  };
}

/** Session totals only grow; an error result may report less (e.g. an empty modelUsage), never go back. */
function usageMax(a: UsageTotals, b: UsageTotals | undefined): UsageTotals {
  if (!b) return a;
  return {
    inputTokens: Math.max(a.inputTokens, b.inputTokens),
    outputTokens: Math.max(a.outputTokens, b.outputTokens),
    cacheRead: Math.max(a.cacheRead, b.cacheRead),
    cacheCreation: Math.max(a.cacheCreation, b.cacheCreation),
  };
}

/** Rounds away float noise (0.1 + 0.2) so deltas compare and display cleanly. */
const roundUsd = (x: number): number => Math.round(x * 1e9) / 1e9;

/**
 * Builds the summary of one run from the parsed stream. Exported for tests of the cost arithmetic.
 * `costUsd` is a delta because `total_cost_usd` is cumulative for the session.
 */
export function summarizeRun(
  state: StreamState,
  input: Pick<
    z.infer<typeof ClaudeTurnInputSchema>,
    'sessionId' | 'previousSessionCostUsd' | 'previousSessionUsage'
  >,
  run: {
    ok: boolean;
    durationMs: number;
    transcriptPath: string;
    stderrPath: string;
    exitCode?: number;
    sessionMode: SessionMode;
  },
): ClaudeTurnSummary {
  const r = state.lastResult;
  const costKnown = typeof r?.total_cost_usd === 'number';
  // Session totals never shrink: a result without them (or a killed run) leaves the previous totals.
  const totalCostUsd = roundUsd(Math.max(r?.total_cost_usd ?? 0, input.previousSessionCostUsd));
  const sessionUsage = usageMax(sumModelUsage(r?.modelUsage), input.previousSessionUsage);
  const text = r ? (r.result ?? r.errors?.join('\n') ?? '') : '';
  return {
    sessionId: state.sessionId ?? input.sessionId,
    ok: run.ok,
    subtype: r?.subtype ?? 'none',
    resultText: text.length > RESULT_TEXT_CAP ? `${text.slice(0, RESULT_TEXT_CAP)}…` : text,
    numTurns: r?.num_turns ?? state.turns,
    durationMs: r?.duration_ms ?? run.durationMs,
    totalCostUsd,
    costUsd: Math.max(0, roundUsd(totalCostUsd - input.previousSessionCostUsd)),
    costKnown,
    usage: usageDelta(sessionUsage, input.previousSessionUsage),
    sessionUsage,
    modelUsage: r?.modelUsage ?? {},
    model: state.model,
    transcriptPath: run.transcriptPath,
    stderrPath: run.stderrPath,
    lastTool: state.lastTool,
    exitCode: run.exitCode,
    sessionMode: run.sessionMode,
  };
}

/**
 * Checks that the CLI can be started (`claude --version`) and returns its version line. Throws a
 * {@link ConfigError} saying how to install it or set CLAUDE_PATH.
 */
export async function ensureClaudeAvailable(claudePath: string): Promise<string> {
  const execa = await loadExeca();
  const r = await execa(claudePath, ['--version'], { reject: false, timeout: 30_000, stdin: 'ignore' });
  const code = (r as { code?: string }).code;
  if (r.failed && (code === 'ENOENT' || code === 'EACCES')) {
    throw new ConfigError(classifyCliFailure({ spawnErrorCode: code, claudePath }).message);
  }
  if (r.exitCode !== 0) {
    throw new ConfigError(
      `"${claudePath} --version" failed (${r.exitCode ?? r.signal ?? 'error'}): ${String(r.stderr || r.stdout)
        .trim()
        .slice(0, 300)}`,
    );
  }
  return String(r.stdout).trim();
}

/** Builds the `cli` backend activities with their dependencies. */
export function createCliActivities(deps: CliActivityDeps) {
  const killGraceMs = deps.killGraceMs ?? 5_000;
  const settingSources = deps.settingSources === undefined ? '' : deps.settingSources;

  /** What the activity itself sets for `claude` (the allow-list adds PATH, locale and HOME). */
  function fixedEnv(
    input: z.infer<typeof ClaudeTurnInputSchema>,
    meter: Pick<MeterHandle, 'baseURL' | 'clientKey'> | undefined,
  ): Record<string, string | undefined> {
    const baseURL = meter?.baseURL;
    return {
      // The model endpoint and key reach `claude` and nothing else: the one place they enter a child's
      // env. With a gateway, the agent reaches the API only through its meter, and when the gateway holds
      // the key the agent gets only its stand-in.
      ...modelCredentialEnv({
        apiKey: meter?.clientKey ?? deps.anthropic.apiKey,
        baseURL: baseURL ?? deps.anthropic.baseURL,
      }),
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      // Temporal owns retries (with backoff and visibility). One CLI-internal retry stays, because only the
      // CLI sees a 429's retry-after header (its result reports just the status): that retry honours it,
      // and anything still failing surfaces here for Temporal to retry.
      CLAUDE_CODE_MAX_RETRIES: '1',
      // Team tools are offered up front: behind tool search the model would need a lookup turn to find them.
      ...(input.team ? { ENABLE_TOOL_SEARCH: 'false' } : {}),
      ...deps.env,
      ...(baseURL ? { ANTHROPIC_BASE_URL: baseURL } : {}),
      // The agent's own secret, from its 0600 file: never part of the activity's input or history.
      ...capabilityEnvSync(input.capabilityFile),
      // The session marker is in the sandbox's environment too: bwrap clears what the watchdog set.
      [SESSION_MARKER_ENV]: input.sessionId,
    };
  }

  /** HOME of `claude` and the parts of it that stay writable in the sandbox. */
  function claudeHome(): { home: string | undefined; writable: string[] } {
    const agentHome = deps.agentHome ?? deps.env?.HOME;
    if (agentHome) return { home: agentHome, writable: [agentHome] };
    const home = process.env.HOME;
    if (!home) return { home: undefined, writable: [] };
    fs.mkdirSync(path.join(home, '.claude'), { recursive: true });
    // A bind needs an existing file; Claude Code reads an empty object as "no settings yet".
    const config = path.join(home, '.claude.json');
    if (!fs.existsSync(config)) fs.writeFileSync(config, '{}\n', { mode: 0o600 });
    return { home, writable: [path.join(home, '.claude'), config] };
  }

  /** One CLI process, start to exit, with transcript, heartbeats and cancellation. */
  async function runOnce(
    input: z.infer<typeof ClaudeTurnInputSchema>,
    mode: SessionMode,
    prompt: string,
    log: Logger,
    meter: { handle: MeterHandle; onRefused: (stop: (why: string) => void) => void } | undefined,
  ): Promise<RunOutcome> {
    const ctx = Context.current();
    const execa = await loadExeca();
    // The run's recorded outputs folder; the worker's own only for callers that do not pass one.
    const dir = path.join(input.outputsDir ?? deps.outputsDir, input.runId, 'agents');
    fs.mkdirSync(dir, { recursive: true });
    const transcriptPath = path.join(dir, `${input.agentId}.jsonl`);
    const stderrPath = path.join(dir, `${input.agentId}.stderr.log`);
    const transcript = fs.createWriteStream(transcriptPath, { flags: 'a' });
    const stderrFile = fs.createWriteStream(stderrPath, { flags: 'a' });
    const state = createStreamState();
    const started = Date.now();
    let stderrTail = '';

    const team = input.team;
    let tools: TeamToolSocket | undefined;
    let turnKey: string | undefined;
    if (team) {
      const key = capabilityEnvSync(input.capabilityFile)[AGENT_KEY_ENV];
      // A team without capabilities: a key for this turn alone, so the endpoint takes no request without one.
      if (!key) turnKey = newTurnKey();
      const identity = { runId: team.runId, agentId: team.agentId, key, turnKey };
      // The MCP server's tools and the agent's own `orchestrator team …` commands, on one socket: the
      // agent reaches its team through this turn, never Temporal itself (src/agent-gateway).
      tools = await serveTeamTools(
        { handler: createTeamToolHandler({ client: ctx.client, identity, logger: log }), identity },
        createAgentGateway({ client: ctx.client, identity, logger: log }),
      );
    }
    const mcpConfig = tools
      ? JSON.stringify({
          mcpServers: {
            [TEAM_MCP_SERVER]: {
              command: process.execPath,
              args: [TEAM_MCP_SCRIPT],
              // The key's file, not the key: the config is on claude's command line, which others can read.
              env: {
                [TEAM_SOCKET_ENV]: tools.path,
                ...(tools.keyFile ? { [TEAM_KEY_FILE_ENV]: tools.keyFile } : {}),
                ...(team ? { [TEAM_AGENT_ENV]: team.agentId } : {}),
              },
            },
          },
        })
      : undefined;
    const args = buildClaudeArgs({
      sessionId: input.sessionId,
      mode,
      model: input.model,
      maxTurns: input.maxTurns,
      maxBudgetUsd: input.maxBudgetUsd,
      appendSystemPrompt: input.appendSystemPrompt,
      allowedTools: team ? [...(input.allowedTools ?? []), ...teamToolsAllowed()] : input.allowedTools,
      disallowedTools: input.disallowedTools,
      permissionMode: input.permissionMode,
      agents: input.agents,
      mcpConfig,
      liveInput: Boolean(team),
      ...(settingSources === null ? {} : { settingSources }),
    });
    log.info(
      { mode, claudePath: deps.claudePath, args: args.filter((a) => a !== input.appendSystemPrompt) },
      'claude run starting',
    );

    // The whole CLI runs in the sandbox, so its Bash, Read and Write tools see only the workspace (and
    // its own HOME); it keeps the network, as its model calls go to the configured endpoint. The
    // watchdog stays outside: it must see its lease file.
    const { home, writable } = claudeHome();
    const sandbox = deps.sandbox ?? defaultSandbox();
    recordSandbox(path.dirname(dir), await sandbox.state());
    const cmd = await sandbox.wrap([deps.claudePath, ...args], {
      workspace: input.cwd,
      network: true,
      fixed: {
        ...fixedEnv(input, meter?.handle),
        ...(turnKey ? { [AGENT_KEY_ENV]: turnKey } : {}),
        ...(tools ? { [TEAM_SOCKET_ENV]: tools.path } : {}),
      },
      extra: input.extraEnv,
      home,
      writable,
      // The team MCP server (started by `claude` inside the sandbox) reaches its socket read-only.
      ...(tools ? { readable: [path.dirname(tools.path)] } : {}),
    });
    const lease = new Lease(leaseFile());
    const [wFile, wArgs] = watchedCommand([cmd.file, ...cmd.args], {
      leaseFile: lease.file,
      mark: input.sessionId,
      markEnv: SESSION_MARKER_ENV,
    });
    // detached: the watchdog leads a process group of its own, so ending it ends the CLI and its children.
    const child = execa(wFile, wArgs, {
      cwd: cmd.cwd,
      env: cmd.env,
      extendEnv: false,
      detached: true,
      reject: false,
      buffer: false,
      ...(team ? { stdin: 'pipe' as const } : { input: prompt }),
      stripFinalNewline: false,
    });
    // Live input: the prompt is the first user line; messages follow as lines of their own while it runs.
    let deliveredSeq = team?.afterSeq ?? 0;
    let inputOpen = Boolean(team);
    let polling: Promise<number> | undefined;
    const write = (text: string) => {
      if (inputOpen) child.stdin?.write(userLine(text));
    };
    const pollInbox = (): Promise<number> => {
      if (!team || !inputOpen) return Promise.resolve(0);
      polling ??= ctx.client.workflow
        .getHandle(teamAgentWorkflowId(team.runId, team.agentId))
        .query(agentInboxQuery, deliveredSeq)
        .then((messages) => {
          let written = 0;
          for (const m of messages) {
            if (m.seq <= deliveredSeq || !inputOpen) continue;
            write(messagePrompt(m));
            deliveredSeq = m.seq;
            written++;
            log.info({ seq: m.seq, from: m.from }, 'message passed to the live session');
          }
          return written;
        })
        .catch((err: unknown) => {
          log.warn({ error: (err as Error).message }, 'inbox poll failed');
          return 0;
        })
        .finally(() => (polling = undefined));
      return polling;
    };
    const endInput = () => {
      if (!inputOpen) return;
      inputOpen = false;
      child.stdin?.end();
    };
    child.stdin?.on('error', () => undefined);
    if (team) write(prompt);
    const poller = team ? setInterval(() => void pollInbox(), team.pollMs) : undefined;
    const pid = child.pid;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });

    let bytes = 0;
    let lineCount = 0;
    let lastProgressAt = started;
    let hung: string | undefined;
    const progress = (): ClaudeHeartbeat => ({
      sessionId: input.sessionId,
      attempt: ctx.info.attempt,
      pid,
      pgid: pid,
      turns: state.turns,
      lastTool: state.lastTool,
      bytes,
      lines: lineCount,
      lastProgressAt,
      host: os.hostname(),
      leaseAt: lease.renew(),
      costUsd: meter
        ? meter.handle.spent().microUsd / 1e6
        : Math.max(
            0,
            roundUsd(
              (state.lastResult?.total_cost_usd ?? input.previousSessionCostUsd) -
                input.previousSessionCostUsd,
            ),
          ),
    });
    let stopping: Promise<'term' | 'kill'> | undefined;
    const stop = (why: string) => {
      if (stopping || pid === undefined) return;
      log.warn({ pid, why }, 'ending claude process group');
      stopping = terminateGroup(pid, exited, killGraceMs);
    };
    // A hang is judged by real progress (output from the CLI), not by the heartbeat timer.
    const hangAfterMs =
      input.hangAfterS !== undefined ? input.hangAfterS * 1000 : (deps.hangAfterMs ?? 600_000);
    const heartbeat = new TurnHeartbeat(ctx, deps.nudges);
    // Spend goes out at once, not at the next paced beat: a worker killed in between must not leave
    // the retry an older cost than the server charged.
    let beatCostUsd: number | undefined;
    const beat = () => {
      const p = progress();
      heartbeat.beat(p, p.costUsd !== beatCostUsd);
      beatCostUsd = p.costUsd;
      if (!hung && Date.now() - lastProgressAt > hangAfterMs) {
        hung = `no output from claude for ${Math.round((Date.now() - lastProgressAt) / 1000)} s (hang limit ${hangAfterMs / 1000} s)`;
        stop(hung);
      }
    };
    beat();
    const interval = setInterval(beat, deps.heartbeatIntervalMs ?? 1_000);
    const deadline =
      input.timeoutS !== undefined
        ? setTimeout(() => {
            hung ??= `the turn outlived its timeout_s (${input.timeoutS} s)`;
            stop(hung);
          }, input.timeoutS * 1000)
        : undefined;
    const onAbort = () =>
      stop(
        `activity ${String((ctx.cancellationSignal.reason as Error | undefined)?.message ?? 'cancelled')}`,
      );
    ctx.cancellationSignal.addEventListener('abort', onAbort);
    if (ctx.cancellationSignal.aborted) onAbort();
    let refusalTimer: NodeJS.Timeout | undefined;
    // A refused CLI normally ends its turn on the error; if it carries on, it is ended mid-turn.
    meter?.onRefused((why) => {
      refusalTimer ??= setTimeout(() => stop(why), REFUSAL_GRACE_MS);
    });

    child.stderr?.on('data', (chunk: Buffer) => {
      const text = redact(chunk.toString('utf8'));
      stderrFile.write(text);
      stderrTail = (stderrTail + text).slice(-STDERR_TAIL_CHARS);
    });
    const lines = child.stdout
      ? readline.createInterface({ input: child.stdout, crlfDelay: Infinity })
      : undefined;
    const linesClosed = new Promise<void>((r) => (lines ? lines.once('close', () => r()) : r()));
    child.stdout?.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      lastProgressAt = Date.now();
    });
    lines?.on('line', (line) => {
      lineCount += 1;
      // Tool output (a Bash `env`, a cat of a key file) is in the stream: redacted before it is kept.
      transcript.write(`${redact(line)}\n`);
      const ev = feedLine(state, line);
      if (ev.kind === 'malformed')
        log.warn({ error: ev.error, line: line.slice(0, 200) }, 'malformed stream-json line');
      else if (ev.kind === 'result' && ev.result.is_error)
        log.info({ subtype: ev.result.subtype }, 'claude result is an error');
      // The turn is over: one last look at the inbox, then end the input (the process exits) unless a
      // message arrived, which becomes the next turn of this process.
      if (ev.kind === 'result' && inputOpen) {
        void (async () => {
          await polling;
          if ((await pollInbox()) === 0) endInput();
        })();
      }
      beat();
    });

    try {
      await exited;
      // Whatever the CLI left in its group (it is gone, so nothing legitimate remains), then whatever
      // is still tagged with this session: tools run in sessions of their own, outside the group.
      // The group also holds bwrap's pid-namespace init and the watchdog's poller, whose zombies pid 1
      // reaps: a turn is over only once they are gone, so nothing of it is listed after it returns.
      if (!(await killGroupAndWait(pid)))
        log.warn({ pgid: pid, waitedMs: GROUP_GONE_MS }, 'claude process group still listed after kill');
      const swept = await sweepSessionProcesses(input.sessionId, GROUP_GONE_MS / 50);
      if (swept.length) log.warn({ pids: swept }, 'killed leftover processes of the claude run');
      const result = await child;
      if (stopping) await stopping;
      await linesClosed;
      const durationMs = Date.now() - started;
      // In the sandbox a missing or unusable binary is bwrap's exec failure (exit 1) on stderr.
      const execFailure =
        cmd.sandboxed && result.exitCode === 1 ? /^bwrap: execvp .*: (.*)$/m.exec(stderrTail) : null;
      const spawnErrorCode =
        result.failed && result.exitCode === undefined
          ? (result as { code?: string }).code
          : execFailure
            ? /Permission denied/.test(execFailure[1] ?? '')
              ? 'EACCES'
              : 'ENOENT'
            : undefined;
      const exitCode = result.exitCode;
      const ok = exitCode === 0 && state.lastResult !== undefined && !state.lastResult.is_error;
      const summary = summarizeRun(state, input, {
        ok,
        durationMs,
        transcriptPath,
        stderrPath,
        exitCode,
        sessionMode: mode,
      });
      if (team) summary.deliveredSeq = deliveredSeq;
      const cancelled = ctx.cancellationSignal.aborted;
      if (hung && !cancelled) {
        log.warn({ why: hung, bytes, lines: lineCount }, 'claude run ended as hung');
        return {
          summary,
          cancelled,
          failure: { type: 'AgentHung', message: `claude hung: ${hung}`, nonRetryable: true },
        };
      }
      log.info(
        {
          exitCode,
          signal: result.signal,
          ok,
          subtype: summary.subtype,
          costUsd: summary.costUsd,
          turns: summary.numTurns,
          durationMs,
          cancelled,
        },
        'claude run finished',
      );
      if (ok) return { summary, cancelled };
      const failure = classifyCliFailure({
        exitCode,
        signal: result.signal,
        spawnErrorCode,
        result: state.lastResult,
        stderr: stderrTail,
        claudePath: deps.claudePath,
      });
      return { summary, failure, cancelled };
    } finally {
      clearInterval(interval);
      heartbeat.stop();
      if (deadline) clearTimeout(deadline);
      lease.release();
      if (refusalTimer) clearTimeout(refusalTimer);
      clearInterval(poller);
      endInput();
      await tools?.close();
      ctx.cancellationSignal.removeEventListener('abort', onAbort);
      await Promise.all([
        new Promise<void>((r) => transcript.end(r)),
        new Promise<void>((r) => stderrFile.end(r)),
      ]);
    }
  }

  return {
    /**
     * Runs one agent turn with the `claude` CLI. Returns the summary on success; throws an
     * ApplicationFailure (type from {@link classifyCliFailure}, summary in `details[0]`) on failure, or a
     * CancelledFailure (summary in `details[0]`) when cancelled. Charge `costUsd` of either.
     */
    // An arrow property, not a method: the worker calls activities detached from this object.
    claudeTurn: async (raw: ClaudeTurnInput): Promise<ClaudeTurnSummary> => {
      const parsed = ClaudeTurnInputSchema.safeParse(raw);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: 'InvalidInput',
          message: `claudeTurn input: ${formatZodIssues(parsed.error).join('; ')}`,
          nonRetryable: true,
        });
      }
      const input = parsed.data;
      const ctx = Context.current();
      const attempt = ctx.info.attempt;
      const log = deps.logger.child({
        runId: input.runId,
        agentId: input.agentId,
        sessionId: input.sessionId,
        attempt,
      });
      if (!fs.existsSync(input.cwd)) {
        throw ApplicationFailure.create({
          type: 'InvalidInput',
          message: `claudeTurn input: cwd: workspace ${input.cwd} does not exist`,
          nonRetryable: true,
        });
      }

      const previous = ClaudeHeartbeatSchema.safeParse(ctx.info.heartbeatDetails);
      if (previous.success) log.info({ previous: previous.data }, 'previous attempt progress');
      // A previous attempt whose worker died may have left its CLI running, here or on another host:
      // never run one session twice (../watchdog).
      const earlier = await endEarlierAttempts(
        input.sessionId,
        previousLease(ctx.info.heartbeatDetails),
        ctx.cancellationSignal,
        SESSION_MARKER_ENV,
      );
      if (ctx.cancellationSignal.aborted)
        throw ctx.cancellationSignal.reason ?? new CancelledFailure('CANCELLED');
      if (earlier.killed.length || earlier.waitedMs)
        log.warn(earlier, 'ended processes of an earlier attempt before starting');
      if (!findProgram(deps.claudePath, input.cwd, process.env.PATH)) {
        const failure = classifyCliFailure({ spawnErrorCode: 'ENOENT', claudePath: deps.claudePath });
        throw ApplicationFailure.create({ type: failure.type, message: failure.message, nonRetryable: true });
      }

      const retrying = attempt > 1 || input.agentAttempt > 1;
      let refusedHook: ((why: string) => void) | undefined;
      const meterInput = input.meter ?? { id: input.agentId, phase: '', agent: input.agentId, limits: {} };
      const handle = deps.gateway
        ? await openMeter(
            deps.gateway,
            input.runId,
            meterInput,
            { onRefuse: (r) => refusedHook?.(`budget: ${r.message}`) },
            // A workflow's turn: the run says which limits bind it (see openMeter).
            input.meter ? runLimitsFrom(ctx.client) : undefined,
          )
        : undefined;
      const meter = handle
        ? { handle, onRefused: (fn: (why: string) => void) => void (refusedHook = fn) }
        : undefined;
      let out: RunOutcome;
      try {
        let mode: SessionMode = input.resume || retrying ? 'resume' : 'new';
        let prompt = retrying ? RETRY_NOTE + input.prompt : input.prompt;
        out = await runOnce(input, mode, prompt, log, meter);
        if (!out.cancelled && !handle?.refusal() && out.failure?.type === 'SessionInUse' && mode === 'new') {
          log.warn('session exists already (an earlier attempt created it): resuming it');
          mode = 'resume';
          prompt = RETRY_NOTE + input.prompt;
          out = await runOnce(input, mode, prompt, log, meter);
        } else if (
          !out.cancelled &&
          !handle?.refusal() &&
          out.failure?.type === 'SessionNotFound' &&
          mode === 'resume'
        ) {
          log.warn('session has no transcript yet (an earlier attempt died first): starting it');
          mode = 'new';
          out = await runOnce(input, mode, input.prompt, log, meter);
        }
      } finally {
        handle?.close();
      }
      // On a retry the CLI's session total also holds the dead attempt's spend: no like-for-like check.
      if (handle) meterSummary(out.summary, handle, log, !retrying);

      if (out.cancelled) {
        const reason = ctx.cancellationSignal.reason as Error | undefined;
        throw new CancelledFailure(reason?.message ?? 'CANCELLED', [out.summary]);
      }
      const refusal = handle?.refusal();
      if (refusal) {
        out.summary.budgetRefusal = refusal;
        log.warn({ reason: refusal.message }, 'claude turn stopped by its budget');
        throw ApplicationFailure.create({
          type: BUDGET_EXCEEDED,
          message: refusal.message,
          nonRetryable: true,
          details: [out.summary],
        });
      }
      if (!out.failure) return out.summary;
      log.warn(
        { type: out.failure.type, nonRetryable: out.failure.nonRetryable, message: out.failure.message },
        'claude turn failed',
      );
      throw ApplicationFailure.create({
        type: out.failure.type,
        message: out.failure.message,
        nonRetryable: out.failure.nonRetryable,
        details: [out.summary],
      });
    },
  };
}

/**
 * Replaces the CLI's cost figures with the meter's (what was served, on the served model) and warns when
 * the CLI's own figure differs by more than 1%: a price table out of date, or a response the meter missed.
 */
export function meterSummary(
  summary: ClaudeTurnSummary,
  handle: MeterHandle,
  log: Logger,
  crossCheck: boolean,
): void {
  const spent = handle.spent();
  const cli = summary.costUsd;
  summary.cliCostUsd = cli;
  summary.microUsd = spent.microUsd;
  summary.costUsd = spent.microUsd / 1e6;
  summary.usage = {
    inputTokens: spent.usage.input_tokens,
    outputTokens: spent.usage.output_tokens,
    cacheRead: spent.usage.cache_read_input_tokens,
    cacheCreation: spent.usage.cache_creation_input_tokens,
  };
  if (!crossCheck || !summary.costKnown) return;
  const check = crossCheckCost(spent.microUsd, cli);
  if (check.disagree) {
    log.warn(
      {
        meterUsd: summary.costUsd,
        cliUsd: cli,
        relativeDiff: Math.round(check.relativeDiff * 1e4) / 1e4,
        models: Object.keys(spent.models),
        meterFile: handle.meterFile,
      },
      'CLI cost differs from the meter by more than 1%',
    );
  }
}

export type CliActivities = ReturnType<typeof createCliActivities>;
