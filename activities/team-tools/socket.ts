/**
 * The per-agent endpoint of a team agent's turn: HTTP over a unix socket in a private temp directory (mode
 * 0700), alive while the agent's process runs, visible inside its sandbox only. The team MCP server
 * (bin/team-mcp.mjs) uses `GET /tools` (the tools) and `POST /call {name, arguments}` (run one); the
 * agent's own `orchestrator team …` commands use `POST /agent` (src/agent-gateway, ./agent-gateway), so
 * that no agent needs a connection to Temporal, or its credentials.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { teamToolDefinitions } from './definitions';
import { AGENT_GATEWAY_PATH } from '../../src/agent-gateway';
import type { AgentGatewayHandler } from './agent-gateway';
import type { TeamToolHandler } from './handler';

/** The stdio MCP server that `claude` starts. */
export const TEAM_MCP_SCRIPT = fileURLToPath(new URL('../../bin/team-mcp.mjs', import.meta.url));

/** Environment variable naming the socket, set for the agent's process and its MCP server. */
export { TEAM_SOCKET_ENV } from '../../src/agent-gateway';

const MAX_BODY = 1_000_000;

export interface TeamToolSocket {
  path: string;
  close(): Promise<void>;
}

/** Serves the MCP server's tools (`handler`, for `claude` agents) and the agent's commands (`gateway`). */
export async function serveTeamTools(
  handler: TeamToolHandler | undefined,
  gateway?: AgentGatewayHandler,
): Promise<TeamToolSocket> {
  // Short path: unix socket paths are limited to ~107 bytes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-mcp-'));
  fs.chmodSync(dir, 0o700);
  const socketPath = path.join(dir, 's');
  const tools = JSON.stringify(teamToolDefinitions());
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (handler && req.method === 'GET' && req.url === '/tools') return send(200, tools);
    const route =
      req.method !== 'POST'
        ? undefined
        : handler && req.url === '/call'
          ? 'call'
          : gateway && req.url === AGENT_GATEWAY_PATH
            ? 'agent'
            : undefined;
    if (!route) return send(404, '{"error":"not found"}');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      const tooLarge = size > MAX_BODY;
      let body: unknown;
      try {
        body = tooLarge ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      if (route === 'agent') {
        if (body === undefined) {
          send(
            400,
            JSON.stringify({ error: tooLarge ? 'request too large (max 1 MB)' : 'request is not JSON' }),
          );
          return;
        }
        void gateway!(req.headers.authorization, body).then((a) => send(a.status, JSON.stringify(a.body)));
        return;
      }
      if (body === undefined) {
        send(
          200,
          JSON.stringify({
            text: tooLarge ? 'tool call too large (max 1 MB)' : 'tool call is not JSON',
            isError: true,
          }),
        );
        return;
      }
      const call = body as { name?: unknown; arguments?: unknown };
      void handler!(String(call.name), call.arguments).then((answer) => send(200, JSON.stringify(answer)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    path: socketPath,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
