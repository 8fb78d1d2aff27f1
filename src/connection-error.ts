/**
 * One line for "cannot reach Temporal", whichever client failed: the TypeScript client (grpc-js) or the
 * worker's native connection (whose errors are raw `tonic::transport::Error(...)` debug strings).
 */

/** The cause in words, from either client's error text. */
export function connectionFailureReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  if (/ConnectionRefused|ECONNREFUSED|Connection refused/i.test(text)) return 'connection refused';
  if (/dns error|failed to lookup|ENOTFOUND|Name or service not known|EAI_AGAIN/i.test(text))
    return 'unknown host';
  if (/deadline|timed? ?out|Elapsed/i.test(text)) return 'no answer in time';
  if (/tls|certificate|ssl/i.test(text)) return 'TLS handshake failed';
  if (/unreachable|EHOSTUNREACH|ENETUNREACH/i.test(text)) return 'network unreachable';
  // Unknown shapes: the first line, without the debug-struct noise of tonic errors.
  return text
    .split('\n')[0]!
    .replace(/^tonic::transport::Error\(/, '')
    .slice(0, 200);
}

/** `cannot reach Temporal at <address> (TEMPORAL_ADDRESS): <reason>. Start a dev server …` */
export function cannotReachTemporal(address: string, err: unknown): string {
  return (
    `cannot reach Temporal at ${address} (TEMPORAL_ADDRESS): ${connectionFailureReason(err)}. ` +
    'Start a dev server with `orchestrator dev` or `orchestrator server start`.'
  );
}
