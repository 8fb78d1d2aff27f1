/**
 * A quick look at whether anything listens at a Temporal address, for the CLI: one TCP connection.
 *
 * The client's own connect waits its whole timeout (5 s) for a server that refuses every connection,
 * retrying, and then reports "no answer in time". Nothing listening is the usual mistake (no dev server
 * started) and a refused connection says so at once: the CLI then fails in milliseconds, with the right
 * reason. Anything else (it answers, it is slow, a name that does not resolve yet) goes on to the client's
 * connect, which decides as before. Workers do not ask: a worker started beside its server (a compose
 * file) waits for it.
 */
import net from 'node:net';

/** The proxy variables grpc-js honours: through a proxy, a direct connection says nothing. */
const PROXY_VARIABLES = ['grpc_proxy', 'https_proxy', 'http_proxy'];

/** `host` and `port` of `host:port` or `[v6]:port`; undefined when it has no numeric port. */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address.trim());
  const port = Number(m?.[3]);
  if (!m || !(port > 0 && port < 65536)) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * The error of a connection to `address` that was refused (ECONNREFUSED: nothing listens there);
 * undefined when it connected, took longer than `timeoutMs`, failed otherwise, or was not tried (a proxy
 * is configured in `env`, or the address has no port).
 */
export async function refusedConnection(
  address: string,
  timeoutMs = 1_000,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NodeJS.ErrnoException | undefined> {
  const target = splitAddress(address);
  if (!target) return undefined;
  if (PROXY_VARIABLES.some((k) => env[k] || env[k.toUpperCase()])) return undefined;
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port });
    let settled = false;
    const done = (err?: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(err?.code === 'ECONNREFUSED' ? err : undefined);
    };
    const timer = setTimeout(() => done(), timeoutMs);
    socket.once('connect', () => done());
    // `on`, not `once`: an error after the first must not go unheard (an unheard one throws).
    socket.on('error', (err: NodeJS.ErrnoException) => done(err));
  });
}
