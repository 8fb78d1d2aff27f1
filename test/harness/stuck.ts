/**
 * How a workflow that did not close in time looks, so a stuck test fails naming the step it waits on
 * instead of only "timed out": its status, its own pending activities and those of its open children
 * (a script agent runs inline in the run, a model agent in a child), and the last events of its history.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const EventType = temporal.api.enums.v1.EventType;
const PendingState = temporal.api.enums.v1.PendingActivityState;

type Timestamp = { seconds?: { toNumber(): number } | number | null; nanos?: number | null };

/** A proto timestamp as `HH:MM:SS.mmm`, or `-`. */
function clock(ts: Timestamp | null | undefined): string {
  if (!ts?.seconds) return '-';
  const s = typeof ts.seconds === 'number' ? ts.seconds : ts.seconds.toNumber();
  return new Date(s * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString().slice(11, 23);
}

async function pendingOf(client: Client, workflowId: string, depth: number): Promise<string[]> {
  const { raw, status } = await client.workflow.getHandle(workflowId).describe();
  const out = [`${workflowId}: ${status.name}`];
  for (const a of raw.pendingActivities ?? [])
    out.push(
      `  ${a.activityType?.name ?? '?'} attempt ${a.attempt ?? '?'} ${PendingState[a.state ?? 0] ?? a.state}` +
        ` scheduled ${clock(a.scheduledTime)} started ${clock(a.lastStartedTime)}` +
        ` beat ${clock(a.lastHeartbeatTime)} worker ${a.lastWorkerIdentity || '-'}` +
        (a.lastFailure?.message ? ` last failure: ${a.lastFailure.message}` : ''),
    );
  if (depth > 0)
    for (const c of raw.pendingChildren ?? [])
      if (c.workflowId) out.push(...(await pendingOf(client, c.workflowId, depth - 1)));
  return out;
}

/** The report: pending work (two levels of children) and the last `events` events with their times. */
export async function stuckReport(client: Client, workflowId: string, events = 12): Promise<string> {
  try {
    const pending = await pendingOf(client, workflowId, 2);
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const tail = (history.events ?? [])
      .slice(-events)
      .map((e) => `  ${clock(e.eventTime)} ${EventType[e.eventType ?? 0] ?? e.eventType}`);
    return `now ${new Date().toISOString().slice(11, 23)}\n${pending.join('\n')}\nlast events:\n${tail.join('\n')}`;
  } catch (err) {
    return `describe failed: ${(err as Error).message}`;
  }
}
