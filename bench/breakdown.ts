/**
 * Where a workflow's wall time goes, from its history's event timestamps (and its children's): every
 * moment between the first and the last event is given to the one step the workflow was waiting on then
 * (a workflow task queued or running, an activity queued or running, a timer, a child's own steps, a
 * child being started or its result delivered). The parts add up to the workflow's wall time, so they
 * can be compared with each other and with a baseline's.
 */
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Event types by number (the CJS proto package's named enums do not survive every loader). */
const E = {
  started: 1,
  wftScheduled: 5,
  wftStarted: 6,
  wftCompleted: 7,
  wftTimedOut: 8,
  wftFailed: 9,
  actScheduled: 10,
  actStarted: 11,
  actCompleted: 12,
  actFailed: 13,
  actTimedOut: 14,
  actCanceled: 16,
  timerStarted: 17,
  timerFired: 18,
  timerCanceled: 19,
  marker: 25,
  childInitiated: 29,
  childStartFailed: 30,
  childStarted: 31,
  childClosedFirst: 32,
  childClosedLast: 36,
  upsert: 40,
} as const;

/** One step a workflow waited on, from `start` to `end` (ms); the highest `prio` owns a moment. */
export interface Span {
  cat: string;
  start: number;
  end: number;
  prio: number;
}

/** Counts of what a history holds (for "how many round trips"). */
export type Counts = Record<string, number>;

/** A child workflow the history started: where to fetch its own history. */
export interface ChildRef {
  workflowId: string;
  runId?: string;
}

function ms(e: HistoryEvent): number {
  const t = e.eventTime;
  if (!t) return 0;
  return Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;
}

function id(v: unknown): number {
  return Number(v ?? 0);
}

/**
 * The spans and counts of one history. `prefix` names a child's steps (`agent › `). Ranks: a workflow
 * task over an activity over a timer over a child's own steps over the child being started or delivered;
 * a child's spans are ranked by `rank` (pass `(p) => 11 + p / 10` for them, between its parent's "child"
 * span and its parent's own steps).
 */
export function spansOf(
  events: readonly HistoryEvent[],
  prefix = '',
  rank: (prio: number) => number = (p) => 10 + p,
): {
  spans: Span[];
  first: number;
  last: number;
  counts: Counts;
  children: ChildRef[];
  /** The execution this one continued as new from, if any. */
  continuedFrom?: string;
} {
  const spans: Span[] = [];
  const counts: Counts = {};
  const children: ChildRef[] = [];
  let continuedFrom: string | undefined;
  const at = new Map<number, { t: number; name?: string }>();
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  const span = (cat: string, start: number, end: number, prio: number) =>
    spans.push({ cat: prefix + cat, start, end, prio: rank(prio) });
  for (const e of events) {
    const t = ms(e);
    const eid = id(e.eventId);
    switch (e.eventType as number) {
      case E.started:
        continuedFrom = e.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
        break;
      case E.wftScheduled:
        at.set(eid, { t });
        count('workflow tasks');
        break;
      case E.wftStarted: {
        const s = at.get(id(e.workflowTaskStartedEventAttributes?.scheduledEventId));
        if (s) span('workflow task: queued', s.t, t, 5);
        at.set(eid, { t });
        break;
      }
      case E.wftCompleted:
      case E.wftFailed:
      case E.wftTimedOut: {
        const a = e.workflowTaskCompletedEventAttributes ?? e.workflowTaskFailedEventAttributes;
        const s = at.get(id(a?.startedEventId));
        if (s) span('workflow task: run', s.t, t, 6);
        if ((e.eventType as number) !== E.wftCompleted) count('workflow tasks failed');
        break;
      }
      case E.actScheduled: {
        const name = e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
        at.set(eid, { t, name });
        count(`activity ${name}`);
        break;
      }
      case E.actStarted: {
        const s = at.get(id(e.activityTaskStartedEventAttributes?.scheduledEventId));
        if (s) span(`activity ${s.name}: queued`, s.t, t, 4);
        at.set(eid, { t, name: s?.name });
        break;
      }
      case E.actCompleted:
      case E.actFailed:
      case E.actTimedOut:
      case E.actCanceled: {
        const a =
          e.activityTaskCompletedEventAttributes ??
          e.activityTaskFailedEventAttributes ??
          e.activityTaskTimedOutEventAttributes ??
          e.activityTaskCanceledEventAttributes;
        const started = at.get(id(a?.startedEventId));
        if (started) span(`activity ${started.name}: run`, started.t, t, 4);
        break;
      }
      case E.timerStarted:
        at.set(eid, { t });
        count('timers');
        break;
      case E.timerFired:
      case E.timerCanceled: {
        const a = e.timerFiredEventAttributes ?? e.timerCanceledEventAttributes;
        const s = at.get(id(a?.startedEventId));
        if (s) span('timer', s.t, t, 2);
        break;
      }
      case E.marker:
        count(`local activity / marker ${e.markerRecordedEventAttributes?.markerName ?? ''}`.trim());
        break;
      case E.upsert:
        count('search attribute upserts');
        break;
      case E.childInitiated: {
        const a = e.startChildWorkflowExecutionInitiatedEventAttributes;
        at.set(eid, { t, name: a?.workflowType?.name ?? '?' });
        count(`child ${a?.workflowType?.name ?? '?'}`);
        break;
      }
      case E.childStarted: {
        const a = e.childWorkflowExecutionStartedEventAttributes;
        children.push({
          workflowId: a?.workflowExecution?.workflowId ?? '',
          runId: a?.workflowExecution?.runId ?? undefined,
        });
        break;
      }
      default: {
        const type = e.eventType as number;
        if (type === E.childStartFailed || (type >= E.childClosedFirst && type <= E.childClosedLast)) {
          const a =
            e.childWorkflowExecutionCompletedEventAttributes ??
            e.childWorkflowExecutionFailedEventAttributes ??
            e.childWorkflowExecutionCanceledEventAttributes ??
            e.childWorkflowExecutionTimedOutEventAttributes ??
            e.childWorkflowExecutionTerminatedEventAttributes ??
            e.startChildWorkflowExecutionFailedEventAttributes;
          const s = at.get(id(a?.initiatedEventId));
          // Whatever of this span the child's own steps do not cover: starting it, delivering its result.
          if (s) span(`child ${s.name}: start and result delivery`, s.t, t, 1);
        }
      }
    }
  }
  const times = events.map(ms).filter((t) => t > 0);
  return {
    spans,
    first: Math.min(...times),
    last: Math.max(...times),
    counts,
    children,
    ...(continuedFrom ? { continuedFrom } : {}),
  };
}

/**
 * Gives every moment of [first, last] to the highest-priority span covering it (the latest started on a
 * tie), `idle` when none does. Returns ms per category; the values add up to `last - first`.
 */
export function attribute(spans: readonly Span[], first: number, last: number): Record<string, number> {
  const cuts = [...new Set([first, last, ...spans.flatMap((s) => [s.start, s.end])])]
    .filter((t) => t >= first && t <= last)
    .sort((a, b) => a - b);
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < cuts.length; i++) {
    const a = cuts[i]!;
    const b = cuts[i + 1]!;
    let best: Span | undefined;
    for (const s of spans) {
      if (s.start > a || s.end < b || s.end === s.start) continue;
      if (!best || s.prio > best.prio || (s.prio === best.prio && s.start > best.start)) best = s;
    }
    const cat = best?.cat ?? 'idle (between events)';
    out[cat] = (out[cat] ?? 0) + (b - a);
  }
  return out;
}

/** Adds `b` into `a`, key by key. */
export function addInto(a: Record<string, number>, b: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
}
