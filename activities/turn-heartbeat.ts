/**
 * Heartbeats of agent turns, and the in-process channel that makes a cancelled turn notice at once.
 *
 * Cancellation reaches an activity only in the answer to a heartbeat. A turn heartbeats every 10 s (a third
 * of its heartbeat timeout: every beat is a write on the server, whose load grows with every running agent),
 * so on its own it would notice a rollback ~5 s late on average. When its agent workflow is asked to cancel, that workflow calls the
 * `agentTurns.cancelRequested` sink (src/shared/sinks) in this worker process, which nudges the turn here:
 * for a few seconds it heartbeats fast (every {@link NUDGED_QUICK_EVERY_MS} at first, then every
 * {@link NUDGED_EVERY_MS}), so the cancellation arrives within a round trip of the server recording it.
 * The agent-turn worker throttles heartbeats to no more than that (workers/), so each nudged beat is
 * sent. The channel is only a hint: a turn on another worker process, or a nudge that comes before the
 * server recorded the request, still learns of it by heartbeat.
 */
import type { Context } from '@temporalio/activity';

/**
 * How often a turn's heartbeat reaches the server when nothing is asked of it, for the agent turns'
 * heartbeat timeout (src/shared/failures AGENT_TURN_HEARTBEAT_TIMEOUT, 30 s): see
 * {@link turnHeartbeatEvery}.
 */
export const TURN_HEARTBEAT_MS = 10_000;
/**
 * Whether the turn's cancellation is one its workflow asked for (a rollback, a stopped run): the run
 * doing as it was told, logged at info when a turn's processes are ended for it. Any other reason (the
 * heartbeat timed out, the worker is shutting down, the activity was reset or paused) is worth a warning.
 */
export function cancelledByWorkflow(ctx: Pick<Context, 'cancellationSignal'>): boolean {
  return (ctx.cancellationSignal.reason as Error | undefined)?.message === 'CANCELLED';
}

/** A turn beats this many times per heartbeat timeout: two beats may be lost or late before it times out. */
export const BEATS_PER_TIMEOUT = 3;
/** Never more often than this (the pace of the 10 s timeout's days). */
export const MIN_TURN_HEARTBEAT_MS = 2_000;

/**
 * The pace of a turn's heartbeats for the heartbeat timeout it was scheduled with: a third of it, between
 * {@link MIN_TURN_HEARTBEAT_MS} and {@link TURN_HEARTBEAT_MS}. Every beat is a write of the run's state
 * on the server: with hundreds of turns, the beats are most of what the server does (70 % of its
 * requests with 100 held agents beating every 2 s), so they come as seldom as liveness allows. From the
 * turn's own timeout, never a constant: a turn scheduled by an older workflow (10 s) still beats often
 * enough for it.
 */
export function turnHeartbeatEvery(heartbeatTimeoutMs: number | undefined): number {
  if (!heartbeatTimeoutMs || heartbeatTimeoutMs <= 0) return TURN_HEARTBEAT_MS;
  return Math.min(
    TURN_HEARTBEAT_MS,
    Math.max(MIN_TURN_HEARTBEAT_MS, Math.floor(heartbeatTimeoutMs / BEATS_PER_TIMEOUT)),
  );
}
/** How often a nudged turn heartbeats once its first {@link NUDGED_QUICK_FOR_MS} are over. */
export const NUDGED_EVERY_MS = 50;
/**
 * How often a nudged turn heartbeats during its first {@link NUDGED_QUICK_FOR_MS}, and so the most a worker
 * may throttle agent-turn heartbeats. The sink that nudges is called just before the workflow task that asks
 * for the cancellation is sent to the server (the SDK calls sinks first), so the beat at once is nearly
 * always answered before the server recorded the request, and the next one brings it: a rollback's
 * cancellation was noticed up to {@link NUDGED_EVERY_MS} later than it could be. A few beats more per
 * cancellation, not per running turn.
 */
export const NUDGED_QUICK_EVERY_MS = 10;
/** How long a nudged turn beats every {@link NUDGED_QUICK_EVERY_MS}: the server records the request within it. */
export const NUDGED_QUICK_FOR_MS = 150;
/** How long a nudged turn heartbeats fast: the cancellation is recorded well within this. */
export const NUDGED_FOR_MS = 5_000;

/** The agent workflow execution a turn belongs to: the key of its nudges. */
export function turnKey(workflowId: string, runId: string): string {
  return `${workflowId}\n${runId}`;
}

/** Nudges from workflow sinks to the turns running in this process, by {@link turnKey}. */
export class TurnNudges {
  private readonly listeners = new Map<string, Set<() => void>>();

  /** Calls `fn` on every nudge of `key` until the returned function is called. */
  listen(key: string, fn: () => void): () => void {
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(key);
    };
  }

  nudge(key: string): void {
    for (const fn of this.listeners.get(key) ?? []) fn();
  }

  /** Turns listening now (for tests and the worker's diagnostics). */
  get size(): number {
    return this.listeners.size;
  }
}

/**
 * Paces one turn's heartbeats: `beat(details)` as often as the turn likes (it keeps the latest details),
 * sent every {@link turnHeartbeatEvery} of its heartbeat timeout, or every {@link NUDGED_EVERY_MS} for a
 * while after a nudge.
 */
export class TurnHeartbeat<D> {
  private details: D | undefined;
  private sentAt = 0;
  private fast: NodeJS.Timeout | undefined;
  private readonly unlisten: () => void;

  constructor(
    private readonly ctx: Pick<Context, 'heartbeat' | 'info' | 'cancellationSignal'>,
    nudges: TurnNudges | undefined,
    private readonly opts: {
      everyMs: number;
      nudgedEveryMs: number;
      nudgedForMs: number;
      quickEveryMs?: number;
      quickForMs?: number;
    } = {
      everyMs: turnHeartbeatEvery(ctx.info.heartbeatTimeoutMs),
      nudgedEveryMs: NUDGED_EVERY_MS,
      nudgedForMs: NUDGED_FOR_MS,
      quickEveryMs: NUDGED_QUICK_EVERY_MS,
      quickForMs: NUDGED_QUICK_FOR_MS,
    },
  ) {
    const run = ctx.info.workflowExecution;
    this.unlisten =
      (run && nudges?.listen(turnKey(run.workflowId, run.runId), () => this.nudged())) ?? (() => undefined);
  }

  /**
   * Records the latest details; sends them when a heartbeat is due (the first one at once), or at once
   * with `now` (details a retry must not miss, such as money spent).
   */
  beat(details: D, now = false): void {
    this.details = details;
    if (now || this.fast || Date.now() - this.sentAt >= this.opts.everyMs) this.send();
  }

  /** Stops listening and beating; call when the turn ends. */
  stop(): void {
    this.unlisten();
    if (this.fast) clearTimeout(this.fast);
    this.fast = undefined;
  }

  private send(): void {
    this.sentAt = Date.now();
    this.ctx.heartbeat(this.details);
  }

  private nudged(): void {
    if (this.fast || this.ctx.cancellationSignal.aborted) return;
    const at = Date.now();
    const { nudgedEveryMs, nudgedForMs } = this.opts;
    const quickEveryMs = this.opts.quickEveryMs ?? nudgedEveryMs;
    const quickForMs = this.opts.quickForMs ?? 0;
    const next = () => (Date.now() - at < quickForMs ? quickEveryMs : nudgedEveryMs);
    const tick = () => {
      if (this.ctx.cancellationSignal.aborted || Date.now() - at > nudgedForMs) {
        this.fast = undefined;
        return;
      }
      this.send();
      this.fast = setTimeout(tick, next());
    };
    this.send();
    this.fast = setTimeout(tick, next());
  }
}
