import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { refusedConnection, splitAddress } from '../../src/reachable';

/** A port nothing listens on: one the kernel gave a server, which is closed again. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('whether anything listens at a Temporal address (refusedConnection)', () => {
  it('splits host:port and [v6]:port, and takes nothing without a numeric port', () => {
    expect(splitAddress('127.0.0.1:7233')).toEqual({ host: '127.0.0.1', port: 7233 });
    expect(splitAddress('[::1]:7233')).toEqual({ host: '::1', port: 7233 });
    expect(splitAddress('ns.tmprl.cloud:7233')).toEqual({ host: 'ns.tmprl.cloud', port: 7233 });
    for (const bad of ['localhost', ':7233', 'h:0', 'h:70000', 'h:x', '::1:7233'])
      expect(splitAddress(bad), bad).toBeUndefined();
  });

  it('names a refused connection at once, and nothing when a server answers', async () => {
    const port = await closedPort();
    const t0 = performance.now();
    const refused = await refusedConnection(`127.0.0.1:${port}`, 5_000, {});
    expect(refused?.code).toBe('ECONNREFUSED');
    // Refused is an answer: no waiting for the timeout.
    expect(performance.now() - t0).toBeLessThan(5_000);

    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port: open } = server.address() as net.AddressInfo;
      expect(await refusedConnection(`127.0.0.1:${open}`, 5_000, {})).toBeUndefined();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('does not ask through a proxy, nor an address without a port', async () => {
    const port = await closedPort();
    for (const proxy of ['grpc_proxy', 'HTTPS_PROXY', 'http_proxy'])
      expect(
        await refusedConnection(`127.0.0.1:${port}`, 5_000, { [proxy]: 'http://proxy:3128' }),
      ).toBeUndefined();
    expect(await refusedConnection('localhost', 5_000, {})).toBeUndefined();
  });
});
