/**
 * The `script` agent backend: an argv array run in the workspace, with no shell unless argv says `sh -c`.
 * It makes the whole engine testable without a model.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { Logger } from '../../src/logger';
import { AGENT_KEY_ENV, capabilityEnv, redactSecret } from '../identity';
import { LineRedactor, redact } from '../../src/redact';
import { FileIdSchema, SafeNameSchema } from '../../src/shared/ids';
import { defaultSandbox, type Sandbox } from '../sandbox';
import { recordSandbox } from '../sandbox/record';
import { signalGroup } from '../process-group';
import { startProgram, startWatched } from '../spawner';
import { createAgentGateway, newTurnKey } from '../team-tools/agent-gateway';
import { serveTeamTools, TEAM_SOCKET_ENV } from '../team-tools/socket';
import { cancelledByWorkflow, TurnHeartbeat, type TurnNudges } from '../turn-heartbeat';
import { LEFTOVER_PREFIX, reapedCommand } from './reaper';
import {
  AGENT_MARK_ENV,
  endEarlierAttempts,
  findProgram,
  commandLine,
  findMarkedProcesses,
  killQuietly,
  Lease,
  LEASE_RENEW_MS,
  LEASE_STALE_S,
  leaseFile,
  WATCHDOG_GRACE_S,
  previousLease,
  watchedCommand,
} from '../watchdog';

export const ScriptTurnInputSchema = z.object({
  runId: SafeNameSchema,
  /** File-safe agent id, used for the output file name. */
  agentId: FileIdSchema,
  workspace: z.string().startsWith('/'),
  /** The run's outputs folder (recorded at run start); default the worker's ORCHESTRATOR_OUTPUTS_DIR. */
  outputsDir: z.string().startsWith('/', 'must be an absolute path').optional(),
  command: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()).default({}),
  timeoutS: z.number().positive().default(600),
  /** A team agent's capability file: its secret goes into this process's environment only. */
  capabilityFile: z.string().startsWith('/').optional(),
});
export type ScriptTurnInput = z.input<typeof ScriptTurnInputSchema>;

export interface ScriptTurnResult {
  ok: boolean;
  exitCode: number;
  /** The last lines of output (capped), for history; the full output is at outputRef. */
  summary: string;
  outputRef: string;
  durationMs: number;
}

const SUMMARY_CHARS = 600;
/** How long a cancelled or timed-out process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 3_000;

/**
 * Whether an earlier attempt of this agent may still have processes, so that the host's processes must be
 * searched for its mark (a pass over /proc, tens of ms on a busy host, blocking the worker's event loop)
 * before this attempt starts. A retry (attempt > 1) or a turn with an earlier attempt's lease may. A first
 * attempt confined by bubblewrap may not: an agent's earlier turns (another phase attempt, a rollback's
 * rerun, the agent's own `max_attempts`) were separate activities whose completion, cancellation included
 * (agent proxies wait for it), came only after their process ended, and with it their pid namespace and
 * everything in it; an abandoned turn (its worker died or stalled past the heartbeat timeout) is retried as
 * attempt 2, never as another attempt 1; a turn of this process still running (its run terminated, then
 * started again) is counted. Unconfined, a script's `setsid` children outlive its group: always search.
 */
export function mayHaveEarlierAttempt(a: {
  attempt: number;
  previous: unknown;
  confined: boolean;
  /** Turns of the same agent still running in this process (e.g. of a terminated run started again). */
  running: number;
}): boolean {
  return !a.confined || a.attempt > 1 || a.previous !== undefined || a.running > 0;
}

/** What the signals that end scripts mean, as ` (meaning)` for a failure message. */
export function describeSignal(signal: string | undefined): string {
  const meaning: Record<string, string> = {
    SIGKILL: 'Forced termination',
    SIGTERM: 'Termination',
    SIGINT: 'User interruption with CTRL-C',
    SIGHUP: 'Terminal closed',
    SIGSEGV: 'Segmentation fault',
    SIGABRT: 'Aborted',
    SIGPIPE: 'Broken pipe or socket',
  };
  const m = signal ? meaning[signal] : undefined;
  return m ? ` (${m})` : '';
}

/** Turns running in this process, by agent mark. */
const liveMarks = new Map<string, number>();

export function createScriptActivities(deps: {
  logger: Logger;
  outputsDir: string;
  baseEnv?: Record<string, string>;
  /** Confines the script to its workspace; default {@link defaultSandbox}. */
  sandbox?: Sandbox;
  /** Nudges a turn whose agent workflow was cancelled into noticing at once (../turn-heartbeat). */
  nudges?: TurnNudges;
}) {
  const { logger, outputsDir } = deps;
  return {
    /**
     * Runs one script agent turn under the watchdog (../watchdog): heartbeats and renews its lease every
     * second; cancellation and timeout end the whole process group. The turn ends when the script ends:
     * background children it leaves are ended with its group, and logged.
     */
    async scriptTurn(raw: ScriptTurnInput): Promise<ScriptTurnResult> {
      const input = ScriptTurnInputSchema.parse(raw);
      const ctx = Context.current();
      // The run's recorded outputs folder; the worker's own only for callers that do not pass one.
      const outDir = path.join(input.outputsDir ?? outputsDir, input.runId, 'agents');
      fs.mkdirSync(outDir, { recursive: true });
      const outputRef = path.join(outDir, `${input.agentId}.log`);
      const sandbox = deps.sandbox ?? defaultSandbox();
      // `run status` says which confinement this run's agents got (from here, not the CLI's host).
      const sandboxState = await sandbox.state();
      recordSandbox(path.dirname(outDir), sandboxState);
      const log = logger.child({ runId: input.runId, agentId: input.agentId, attempt: ctx.info.attempt });
      const [file] = input.command as [string, ...string[]];
      const env = { ...deps.baseEnv, ...input.env };
      const secretEnv = await capabilityEnv(input.capabilityFile);
      if (!findProgram(file, input.workspace, env.PATH ?? process.env.PATH)) {
        throw ApplicationFailure.create({
          type: 'ScriptNotFound',
          message: `script program not found: ${file}`,
          nonRetryable: true,
        });
      }

      // Every earlier attempt of this agent ends before this one starts, on this host or elsewhere.
      const mark = `${input.runId}/${input.agentId}`;
      const lease0 = previousLease(ctx.info.heartbeatDetails);
      const confined = sandboxState.kind === 'bwrap';
      const running = liveMarks.get(mark) ?? 0;
      if (mayHaveEarlierAttempt({ attempt: ctx.info.attempt, previous: lease0, confined, running })) {
        const earlier = await endEarlierAttempts(mark, lease0, ctx.cancellationSignal);
        if (earlier.killed.length || earlier.waitedMs)
          log.warn(earlier, 'ended processes of an earlier attempt before starting');
      }
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');

      const out = fs.createWriteStream(outputRef, { flags: 'a' });
      const started = Date.now();
      let tail = '';
      let bytes = 0;
      log.info({ command: input.command }, 'script agent started');
      const lease = new Lease(leaseFile());
      // Confined to its workspace with an allow-listed environment (the mark included, so leftovers are
      // still found); it keeps the network, because team scripts signal their run through Temporal.
      // The watchdog stays outside the sandbox: it must see its lease file.
      // In bubblewrap's pid namespace the leftovers die with the script before the worker can name them:
      // the reaper inside names and ends them (./reaper).
      const argv = input.command as [string, ...string[]];
      // A team agent (its workflow names it in ORCHESTRATOR_RUN_ID/ORCHESTRATOR_AGENT_ID) reaches its team
      // through this turn's endpoint, with the worker's connection: no Temporal address or credential is
      // in its sandbox (src/agent-gateway).
      const teamAgent =
        input.env.ORCHESTRATOR_RUN_ID === input.runId && input.env.ORCHESTRATOR_AGENT_ID === input.agentId;
      // A team without capabilities: a key for this turn alone, so the endpoint takes no request without one.
      const turnKey = teamAgent && !secretEnv[AGENT_KEY_ENV] ? newTurnKey() : undefined;
      const endpoint = teamAgent
        ? await serveTeamTools(
            undefined,
            createAgentGateway({
              client: ctx.client,
              identity: {
                runId: input.runId,
                agentId: input.agentId,
                key: secretEnv[AGENT_KEY_ENV],
                turnKey,
              },
              logger: log,
            }),
          )
        : undefined;
      const cmd = await sandbox
        .wrap(confined ? reapedCommand(argv) : argv, {
          workspace: input.workspace,
          network: true,
          fixed: {
            ...deps.baseEnv,
            [AGENT_MARK_ENV]: mark,
            ...secretEnv,
            ...(turnKey ? { [AGENT_KEY_ENV]: turnKey } : {}),
            ...(endpoint ? { [TEAM_SOCKET_ENV]: endpoint.path } : {}),
          },
          extra: input.env,
          ...(endpoint ? { readable: [path.dirname(endpoint.path)] } : {}),
        })
        .catch(async (err: unknown) => {
          await endpoint?.close();
          throw err;
        });
      liveMarks.set(mark, (liveMarks.get(mark) ?? 0) + 1);
      // Whatever the script prints is redacted before it reaches the log file or the summary (history).
      const lines = new LineRedactor();
      const onOutput = (chunk: Buffer) => {
        bytes += chunk.length;
        const text = chunk.toString('utf8');
        const clean = lines.push(secretEnv[AGENT_KEY_ENV] ? redactSecret(text, secretEnv) : text);
        if (!clean) return;
        out.write(clean);
        tail = (tail + clean).slice(-(SUMMARY_CHARS + 200));
      };
      // The script is done when its process is: children it left in the background would hold the
      // output pipe open until timeout_s. They are ended with the group, and named in the log. The log
      // file is ended only after this (`swept`): writing the note into an ended stream threw
      // ERR_STREAM_WRITE_AFTER_END out of the worker (seen with 50 agents on a loaded machine).
      let swept: Promise<void> = Promise.resolve();
      const onExit = () => {
        const endGroup = () => {
          const alive = signalGroup(child.pid, 'SIGKILL');
          log.info({ pgid: child.pid, groupWasAlive: alive }, 'script exited: ended its process group');
        };
        // Confined, nothing of the script outlives it outside this group: its pid namespace ended with it
        // and the reaper inside named what was left. A pass over /proc would find nothing.
        if (confined) return endGroup();
        // Only what carries the agent's mark: the watchdog's own helpers are not the script's.
        swept = findMarkedProcesses(mark)
          .then((pids) => {
            const left = pids.map((pid) => ({ pid, cmd: commandLine(pid) }));
            if (left.length) {
              log.warn({ processes: left }, 'ending background processes the script left behind');
              // A turn that ended by an error has ended its log file already.
              if (!out.writableEnded)
                out.write(
                  `\n${LEFTOVER_PREFIX} ${left.length} background process(es) left by the script: ${left.map((p) => `${p.pid} ${p.cmd}`).join('; ')}.\n`,
                );
            }
            for (const pid of pids) killQuietly(pid);
          })
          .catch((err: unknown) => log.warn({ err }, 'could not look for processes the script left behind'))
          .finally(endGroup);
      };
      // Started by the worker's process starter (../spawner): forking the worker itself blocks it for
      // tens of ms. Confined, bubblewrap is started by it directly and it is the watchdog: it ends the
      // sandbox's group when the lease goes stale or the worker dies, and bubblewrap's --die-with-parent
      // ends the sandbox when the starter itself is killed. Three programs less per turn than the shell
      // watchdog (its shell, its command's subshell, its poller and the poller's `sleep`).
      const io = { cwd: cmd.cwd, onStdout: onOutput, onStderr: onOutput, onExit };
      const watched =
        confined && cmd.sandboxed && cmd.args.includes('--die-with-parent')
          ? startWatched(
              cmd.file,
              cmd.args,
              { ...io, env: cmd.env },
              {
                lease: lease.file,
                staleMs: LEASE_STALE_S * 1_000,
                graceMs: WATCHDOG_GRACE_S * 1_000,
              },
            )
          : undefined;
      // Otherwise the shell watchdog (../watchdog) leads a process group of its own and runs the command.
      const underWatchdog = () => {
        const [wFile, wArgs] = watchedCommand([cmd.file, ...cmd.args], { leaseFile: lease.file, mark });
        // The watchdog hands the mark to its command only: its own lease poller (a `sleep 1` loop) must not
        // carry it, or it would be taken for a process the script left behind.
        const { [AGENT_MARK_ENV]: _mark, ...watchdogEnv } = cmd.env;
        return startProgram(wFile, wArgs, { ...io, env: watchdogEnv, detached: true });
      };
      const child = watched ?? underWatchdog();
      await child.started;
      let ended: 'timeout' | 'cancelled' | undefined;
      const terminate = (why: 'timeout' | 'cancelled') => {
        ended ??= why;
        if (why === 'cancelled' && cancelledByWorkflow(ctx))
          log.info({ pid: child.pid, why }, 'ending script process group');
        else log.warn({ pid: child.pid, why }, 'ending script process group');
        signalGroup(child.pid, 'SIGTERM');
        setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS).unref();
      };
      // The lease is renewed every second; the server hears of it at the turn's heartbeat pace.
      const heartbeat = new TurnHeartbeat(ctx, deps.nudges);
      // The longest the lease went unrenewed: a worker whose event loop stalls past LEASE_STALE_S (a
      // loaded machine, a flood of work in this process) has its agent ended by the watchdog. That is
      // the worker's failure, not the agent's, and it is measured on our clock, which a script cannot
      // fake (its output could claim anything).
      let lastBeat = Date.now();
      let stalledMs = 0;
      const beat = () => {
        const now = Date.now();
        stalledMs = Math.max(stalledMs, now - lastBeat);
        lastBeat = now;
        heartbeat.beat({
          pid: child.pid,
          pgid: child.pid,
          host: os.hostname(),
          leaseAt: lease.renew(),
          elapsedMs: Date.now() - started,
          bytes,
        });
      };
      beat();
      const interval = setInterval(beat, LEASE_RENEW_MS);
      const timer = setTimeout(() => terminate('timeout'), input.timeoutS * 1_000);
      const onCancel = () => terminate('cancelled');
      ctx.cancellationSignal.addEventListener('abort', onCancel);
      // Cancelled while the process was starting: the listener came too late to hear it.
      if (ctx.cancellationSignal.aborted) onCancel();
      try {
        const result = await child.ended;
        const durationMs = Date.now() - started;
        const rest = lines.flush();
        if (rest) {
          out.write(rest);
          tail = (tail + rest).slice(-(SUMMARY_CHARS + 200));
        }
        await swept;
        await new Promise<void>((r) => out.end(r));
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
        if (ended === 'timeout') {
          throw ApplicationFailure.create({
            type: 'AgentHung',
            message: `script outlived its timeout_s (${input.timeoutS} s) and was ended`,
            nonRetryable: true,
          });
        }
        if (result.exitCode === undefined) {
          stalledMs = Math.max(stalledMs, Date.now() - lastBeat);
          if (stalledMs > LEASE_STALE_S * 1_000) {
            throw ApplicationFailure.create({
              type: 'LeaseLost',
              message: `the worker stalled ${Math.round(stalledMs / 1000)} s without renewing the agent's lease, so its watchdog ended the script (${result.signal ?? 'signal'}); Temporal retries the attempt`,
              nonRetryable: false,
            });
          }
          throw ApplicationFailure.create({
            type: 'ScriptKilled',
            message: result.spawnError
              ? `script could not start: ${result.spawnError}`
              : `script ended by ${result.signal ?? 'a signal'}${describeSignal(result.signal)}`,
            nonRetryable: true,
          });
        }
        const exitCode = result.exitCode ?? -1;
        log.info({ exitCode, durationMs }, 'script agent finished');
        // The summary goes into history: the agent's own secret never does.
        const summary = redact(redactSecret(tail, secretEnv).slice(-SUMMARY_CHARS).trim());
        return { ok: exitCode === 0, exitCode, summary, outputRef, durationMs };
      } finally {
        clearInterval(interval);
        heartbeat.stop();
        clearTimeout(timer);
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
        lease.release();
        if (!out.closed) out.end();
        const left = (liveMarks.get(mark) ?? 1) - 1;
        if (left > 0) liveMarks.set(mark, left);
        else liveMarks.delete(mark);
        await endpoint?.close();
      }
    },
  };
}
