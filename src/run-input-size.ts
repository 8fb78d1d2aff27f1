/**
 * Workflow inputs are Temporal payloads: the server refuses one over 2 MB (after the client has retried
 * for most of a minute, with "Failed to start Workflow" and no word on what was too large), and a run
 * carries its input into every continue-as-new. Inputs are measured before they are sent.
 */

/** The largest run input accepted: half the server's payload limit, leaving room for the carried state. */
export const MAX_RUN_INPUT_BYTES = 1024 * 1024;

export class RunInputTooLargeError extends Error {
  override readonly name = 'RunInputTooLargeError';
}

function mb(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/** The JSON size of the biggest single value (path like `spec.requirements[0]`) inside `value`. */
export function largestPart(value: unknown, at = ''): { path: string; bytes: number } {
  let best = { path: at || 'input', bytes: Buffer.byteLength(JSON.stringify(value) ?? '') };
  const children: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [`${at}[${i}]`, v])
    : value && typeof value === 'object'
      ? Object.entries(value).map(([k, v]) => [at ? `${at}.${k}` : k, v])
      : [];
  if (children.length === 0) return best;
  let top: { path: string; bytes: number } | undefined;
  for (const [p, v] of children) {
    const part = largestPart(v, p);
    if (!top || part.bytes > top.bytes) top = part;
  }
  // Descend only while one child holds most of the size: otherwise the container is the answer.
  if (top && top.bytes * 2 > best.bytes) best = top;
  return best;
}

/** Throws {@link RunInputTooLargeError} naming the largest part when `input` is over `limit` bytes. */
export function checkRunInputSize(input: unknown, limit = MAX_RUN_INPUT_BYTES, what = 'run input'): number {
  const bytes = Buffer.byteLength(JSON.stringify(input));
  if (bytes <= limit) return bytes;
  const part = largestPart(input);
  throw new RunInputTooLargeError(
    `${what} is ${mb(bytes)}, over the ${mb(limit)} limit for a workflow input; ` +
      `the largest part is ${part.path.replace(/^spec\./, 'intake ')} (${mb(part.bytes)}): put long text in a file in the workspace and refer to it`,
  );
}
