/**
 * One line for "cannot reach Temporal", whichever client failed: the TypeScript client (grpc-js) or the
 * worker's native connection (whose errors are raw `tonic::transport::Error(...)` debug strings).
 */

import { redact } from './redact';

/** An error's message and its causes' (the client wraps the server's answer: "Failed to connect…"). */
function messages(err: unknown): string {
  const out: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    out.push(e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return out.join('\n');
}

/** True when the cluster answered and refused who we are (a wrong API key or client certificate). */
export function isCredentialsRefused(err: unknown): boolean {
  return /UNAUTHENTICATED|PERMISSION_DENIED|Unauthenticated|PermissionDenied/.test(messages(err));
}

/** The cause in words, from either client's error text. */
export function connectionFailureReason(err: unknown): string {
  const all = messages(err);
  const refused =
    /(?:16 UNAUTHENTICATED|7 PERMISSION_DENIED|Unauthenticated|PermissionDenied)[:,]?\s*([^\n]*)/.exec(all);
  if (refused)
    return `credentials refused (${refused[1]!.replace(/^message: /, '').slice(0, 160) || 'no reason given'})`;
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

/**
 * `cannot reach Temporal at <address> (<where the address came from>): <reason>. Start a dev server …`;
 * the source is TEMPORAL_ADDRESS unless a flag or a temporal.toml profile named the address.
 */
export function cannotReachTemporal(address: string, err: unknown, source = 'TEMPORAL_ADDRESS'): string {
  const from = source === 'default' ? 'TEMPORAL_ADDRESS' : source;
  const hint = isCredentialsRefused(err)
    ? "Check the API key (TEMPORAL_API_KEY or the profile's api_key) and the client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH)."
    : 'Start a dev server with `orchestrator dev` or `orchestrator server start`.';
  // A server's answer is quoted: whatever it echoes of a request passes the redaction of secrets.
  return redact(`cannot reach Temporal at ${address} (${from}): ${connectionFailureReason(err)}. ${hint}`);
}

/** gRPC's NOT_FOUND, as a service call of either client reports it. */
const GRPC_NOT_FOUND = 5;

/**
 * The message for a namespace the server does not have, or `undefined` when `describe` (its
 * DescribeNamespace call) finds it or fails for any other reason. Asked only once a worker failed to
 * register: the SDK's own error quotes the server's raw answer, binary details included.
 */
export async function missingNamespace(
  describe: () => Promise<unknown>,
  namespace: string,
  address: string,
  /** A server that is gone may not answer at all: past this, nothing is known. */
  timeoutMs = 5_000,
): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), timeoutMs);
  });
  try {
    await Promise.race([describe(), late]);
    return undefined;
  } catch (err) {
    if ((err as { code?: unknown }).code !== GRPC_NOT_FOUND) return undefined;
    return (
      `namespace "${namespace}" does not exist on ${address}: create it with ` +
      `\`temporal operator namespace create --namespace ${namespace} --address ${address}\`, ` +
      'or name another with --namespace or TEMPORAL_NAMESPACE'
    );
  } finally {
    clearTimeout(timer);
  }
}
