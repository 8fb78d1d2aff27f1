/**
 * The per-agent endpoint the team MCP server (bin/team-mcp.mjs) forwards to: HTTP over a unix socket in a
 * private temp directory (mode 0700), alive while the agent's `claude` process runs. `GET /tools` lists
 * the tools, `POST /call {name, arguments}` runs one.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { teamToolDefinitions } from './definitions';
import type { TeamToolHandler } from './handler';

/** The stdio MCP server that `claude` starts. */
export const TEAM_MCP_SCRIPT = fileURLToPath(new URL('../../bin/team-mcp.mjs', import.meta.url));

/** Environment variable naming the socket, set in the MCP server's env. */
export const TEAM_SOCKET_ENV = 'ORCHESTRATOR_TEAM_SOCKET';

const MAX_BODY = 1_000_000;

export interface TeamToolSocket {
  path: string;
  close(): Promise<void>;
}

export async function serveTeamTools(handler: TeamToolHandler): Promise<TeamToolSocket> {
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
    if (req.method === 'GET' && req.url === '/tools') return send(200, tools);
    if (req.method !== 'POST' || req.url !== '/call') return send(404, '{"error":"not found"}');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) {
        send(200, JSON.stringify({ text: 'tool call too large (max 1 MB)', isError: true }));
        return;
      }
      let call: { name?: unknown; arguments?: unknown };
      try {
        call = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof call;
      } catch {
        send(200, JSON.stringify({ text: 'tool call is not JSON', isError: true }));
        return;
      }
      void handler(String(call.name), call.arguments).then((answer) => send(200, JSON.stringify(answer)));
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
