/**
 * A secured front for the test dev server (which has no TLS): an HTTP/2 TLS server that requires a
 * client certificate from the test CA (mTLS) and, when asked, an API key (`authorization: Bearer …`), and
 * forwards every gRPC call to the plain dev server. What a Temporal Cloud frontend checks, on 127.0.0.1.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TestPki } from './tls';

export interface TlsProxy {
  address: string;
  /** gRPC methods called through the proxy (`/temporal.api.workflowservice.v1.WorkflowService/…`). */
  calls: { path: string; clientCn: string | undefined }[];
  /** Calls refused for a missing or wrong API key. */
  refused: number;
  close(): Promise<void>;
}

export async function startTlsProxy(opts: {
  pki: TestPki;
  upstream: string;
  apiKey?: string;
}): Promise<TlsProxy> {
  const upstream = http2.connect(`http://${opts.upstream}`);
  upstream.on('error', () => undefined);
  const proxy: TlsProxy = { address: '', calls: [], refused: 0, close: () => Promise.resolve() };
  const server = http2.createSecureServer({
    key: fs.readFileSync(opts.pki.serverKey),
    cert: fs.readFileSync(opts.pki.serverCert),
    ca: fs.readFileSync(opts.pki.caCert),
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (opts.apiKey !== undefined && headers.authorization !== `Bearer ${opts.apiKey}`) {
      proxy.refused++;
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '16',
          'grpc-message': 'bad api key',
        },
        { endStream: true },
      );
      return;
    }
    const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
    const cn = peer?.subject?.CN;
    proxy.calls.push({ path: String(headers[':path']), clientCn: Array.isArray(cn) ? cn.join(',') : cn });
    const forwarded: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': headers[':path'] };
    for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) forwarded[k] = v;
    const up = upstream.request(forwarded);
    up.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stream.pipe(up);
    let trailers: http2.OutgoingHttpHeaders = {};
    up.on('response', (h) => {
      const { ':status': status, ...rest } = h;
      // A trailers-only answer (a gRPC error) ends in its headers.
      if (h['grpc-status'] !== undefined) stream.respond({ ':status': status, ...rest }, { endStream: true });
      else {
        stream.respond({ ':status': status, ...rest }, { waitForTrailers: true });
        up.pipe(stream);
      }
    });
    up.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    stream.on('close', () => {
      if (!up.closed) up.close();
    });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('sessionError', () => undefined);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    // Sessions (long polls) are ended rather than waited for.
    for (const s of sessions) s.destroy();
    upstream.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
