/**
 * One `claude` process of a turn, from start to exit: its stream-json output parsed and kept as the
 * transcript (redacted), real progress in the heartbeat, and the process group ended on cancellation, a
 * hang, the turn's timeout or a budget refusal, then swept of anything the run left behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Context } from '@temporalio/activity';
import type { SessionMode } from '../../src/claude/args';
import { createStreamState, feedLine } from '../../src/claude/stream';
import type { Logger } from '../../src/logger';
import type { MeterHandle } from '../../src/meter/gateway';
import { redact } from '../../src/redact';
import { loadExeca } from '../load-execa';
import { GROUP_GONE_MS, killGroupAndWait } from '../process-group';
import { cancelledByWorkflow, TurnHeartbeat } from '../turn-heartbeat';
import { classifyCliFailure, type CliFailureClass } from './classify';
import { prepareTurnCommand } from './command';
import type { ClaudeHeartbeat, ClaudeTurnSummary, ParsedClaudeTurnInput } from './contract';
import type { CliActivityDeps } from './deps';
import { LiveInput } from './live-input';
import { sweepSessionProcesses, terminateGroup } from './process';
import { roundUsd, summarizeRun } from './summary';

/** How long a refused CLI gets to end its turn by itself before its process group is ended. */
const REFUSAL_GRACE_MS = 5_000;
/** Characters of stderr kept in memory, for classifying a failure. */
const STDERR_TAIL_CHARS = 16_384;

/** The turn's meter, and how the run hears that a budget refused a model request. */
export interface TurnMeter {
  handle: MeterHandle;
  onRefused: (stop: (why: string) => void) => void;
}

/** How one run ended. */
export interface RunOutcome {
  summary: ClaudeTurnSummary;
  failure?: CliFailureClass;
  cancelled: boolean;
}

/** One CLI process, start to exit, with transcript, heartbeats and cancellation. */
export async function runOnce(
  deps: CliActivityDeps,
  input: ParsedClaudeTurnInput,
  mode: SessionMode,
  prompt: string,
  log: Logger,
  meter: TurnMeter | undefined,
): Promise<RunOutcome> {
  const killGraceMs = deps.killGraceMs ?? 5_000;
  const ctx = Context.current();
  const execa = await loadExeca();
  // The run's recorded outputs folder; the worker's own only for callers that do not pass one.
  const dir = path.join(input.outputsDir ?? deps.outputsDir, input.runId, 'agents');
  fs.mkdirSync(dir, { recursive: true });
  const transcriptPath = path.join(dir, `${input.agentId}.jsonl`);
  const stderrPath = path.join(dir, `${input.agentId}.stderr.log`);
  const state = createStreamState();
  const started = Date.now();
  let stderrTail = '';

  const team = input.team;
  const cmd = await prepareTurnCommand(deps, {
    input,
    mode,
    dir,
    client: () => ctx.client,
    log,
    meter: meter?.handle,
  });
  const { lease, tools } = cmd;
  const transcript = fs.createWriteStream(transcriptPath, { flags: 'a' });
  const stderrFile = fs.createWriteStream(stderrPath, { flags: 'a' });
  // detached: the watchdog leads a process group of its own, so ending it ends the CLI and its children.
  const child = execa(cmd.file, cmd.args, {
    cwd: cmd.cwd,
    env: cmd.env,
    extendEnv: false,
    detached: true,
    reject: false,
    buffer: false,
    ...(team ? { stdin: 'pipe' as const } : { input: prompt }),
    stripFinalNewline: false,
  });
  const live = new LiveInput(child.stdin, team, () => ctx.client, log);
  live.start(prompt);
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
            (state.lastResult?.total_cost_usd ?? input.previousSessionCostUsd) - input.previousSessionCostUsd,
          ),
        ),
  });
  let stopping: Promise<'term' | 'kill'> | undefined;
  const stop = (why: string, asked = false) => {
    if (stopping || pid === undefined) return;
    if (asked) log.info({ pid, why }, 'ending claude process group');
    else log.warn({ pid, why }, 'ending claude process group');
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
      cancelledByWorkflow(ctx),
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
    if (ev.kind === 'result') void live.resultArrived();
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
    if (team) summary.deliveredSeq = live.deliveredSeq;
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
    live.end();
    await tools?.close();
    ctx.cancellationSignal.removeEventListener('abort', onAbort);
    await Promise.all([
      new Promise<void>((r) => transcript.end(r)),
      new Promise<void>((r) => stderrFile.end(r)),
    ]);
  }
}
