/** Reading recorded workflow histories in tests. */
import type { temporal } from '@temporalio/proto';

/**
 * The activity type of a local activity's marker (sdk-core records `core_local_activity` with its
 * metadata as JSON in `details.data`); undefined for any other event.
 */
export function localActivityType(e: temporal.api.history.v1.IHistoryEvent): string | undefined {
  const marker = e.markerRecordedEventAttributes;
  if (marker?.markerName !== 'core_local_activity') return undefined;
  const data = marker.details?.data?.payloads?.[0]?.data;
  if (!data) return undefined;
  return (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type;
}
