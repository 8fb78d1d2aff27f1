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
 *
 * The turn's contract is ./contract, one CLI process ./run-once, its command line ./command.
 */
import fs from 'node:fs';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { formatZodIssues } from '../../config/errors';
import type { SessionMode } from '../../src/claude/args';
import { BUDGET_EXCEEDED, openMeter, runLimitsFrom } from '../meter';
import { endEarlierAttempts, findProgram, previousLease } from '../watchdog';
import { classifyCliFailure } from './classify';
import {
  ClaudeHeartbeatSchema,
  ClaudeTurnInputSchema,
  type ClaudeTurnInput,
  type ClaudeTurnSummary,
} from './contract';
import type { CliActivityDeps } from './deps';
import { SESSION_MARKER_ENV } from './process';
import { runOnce, type RunOutcome } from './run-once';
import { meterSummary } from './summary';

export { ensureClaudeAvailable } from './available';
export { classifyCliFailure, CliFailureType, NON_RETRYABLE_CLI_FAILURES } from './classify';
export type { CliFailureClass, CliFailureFacts } from './classify';
export {
  ClaudeHeartbeatSchema,
  ClaudeTurnInputSchema,
  type ClaudeHeartbeat,
  type ClaudeTurnInput,
  type ClaudeTurnSummary,
  type ParsedClaudeTurnInput,
} from './contract';
export type { CliActivityDeps } from './deps';
export { meterSummary, RESULT_TEXT_CAP, summarizeRun } from './summary';

/** Prefixed to the prompt when a retry resumes a session an interrupted attempt already wrote to. */
export const RETRY_NOTE =
  'Note: an earlier attempt at this request was interrupted before it finished. Check what is already done in the workspace, then complete the request.\n\n';

/** Builds the `cli` backend activities with their dependencies. */
export function createCliActivities(deps: CliActivityDeps) {
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
        out = await runOnce(deps, input, mode, prompt, log, meter);
        if (!out.cancelled && !handle?.refusal() && out.failure?.type === 'SessionInUse' && mode === 'new') {
          log.warn('session exists already (an earlier attempt created it): resuming it');
          mode = 'resume';
          prompt = RETRY_NOTE + input.prompt;
          out = await runOnce(deps, input, mode, prompt, log, meter);
        } else if (
          !out.cancelled &&
          !handle?.refusal() &&
          out.failure?.type === 'SessionNotFound' &&
          mode === 'resume'
        ) {
          log.warn('session has no transcript yet (an earlier attempt died first): starting it');
          mode = 'new';
          out = await runOnce(deps, input, mode, input.prompt, log, meter);
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

export type CliActivities = ReturnType<typeof createCliActivities>;
