/**
 * The per-agent endpoint of a team agent's turn: HTTP over a unix socket in a private temp directory (mode
 * 0700), alive while the agent's process runs, visible inside its sandbox only. The team MCP server
 * (bin/team-mcp.mjs) uses `GET /tools` (the tools) and `POST /call {agentId, name, arguments}` (run one);
 * the agent's own `orchestrator team …` commands use `POST /agent` (src/agent-gateway, ./agent-gateway), so
 * that no agent needs a connection to Temporal, or its credentials. Both take no request without the
 * agent's key (`authorization: Bearer`): the MCP server reads it from a 0600 file next to the socket
 * (`ORCHESTRATOR_TEAM_KEY_FILE`), never from its command line; a call naming another agent is refused.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { teamToolDefinitions } from './definitions';
import { AGENT_GATEWAY_PATH } from '../../src/agent-gateway';
import { sameKey, type AgentGatewayHandler } from './agent-gateway';
import type { TeamToolHandler, TeamToolIdentity } from './handler';

/** The stdio MCP server that `claude` starts. */
export const TEAM_MCP_SCRIPT = fileURLToPath(new URL('../../bin/team-mcp.mjs', import.meta.url));

/** Environment variable naming the socket, set for the agent's process and its MCP server. */
export { TEAM_SOCKET_ENV } from '../../src/agent-gateway';

/** Environment variable naming the file the team MCP server reads the agent's key from. */
export const TEAM_KEY_FILE_ENV = 'ORCHESTRATOR_TEAM_KEY_FILE';

/** Environment variable naming the agent the team MCP server calls tools as (sent with every call). */
export const TEAM_AGENT_ENV = 'ORCHESTRATOR_TEAM_AGENT';

const MAX_BODY = 1_000_000;

export interface TeamToolSocket {
  path: string;
  /** The file holding the agent's key, for the MCP server (absent without `tools`). */
  keyFile?: string;
  close(): Promise<void>;
}

/** The MCP server's side: what runs a tool call, and for which agent (its key is the one required). */
export interface TeamToolsServed {
  handler: TeamToolHandler;
  identity: Pick<TeamToolIdentity, 'agentId' | 'key' | 'turnKey'>;
}

/**
 * Whether a request to `/tools` or `/call` may go on: it carries the agent's key (401 without one, 403 with
 * another) and names no other agent (403). Undefined when it may.
 */
export function checkToolAccess(
  identity: TeamToolsServed['identity'],
  authorization: string | undefined,
  agentId: unknown,
): { status: number; error: string } | undefined {
  const key = identity.key ?? identity.turnKey;
  if (!/^Bearer .+$/.test(authorization ?? ''))
    return {
      status: 401,
      error: `no key: this team endpoint serves ${identity.agentId} and takes its key only`,
    };
  if (key === undefined || !sameKey(authorization, key))
    return { status: 403, error: `not the key of ${identity.agentId}, the agent this team endpoint serves` };
  if (agentId !== undefined && agentId !== identity.agentId)
    return {
      status: 403,
      error: `this team endpoint serves ${identity.agentId}: it acts as that agent only, not as ${JSON.stringify(agentId)}`,
    };
  return undefined;
}

/** Serves the MCP server's tools (`tools`, for `claude` agents) and the agent's commands (`gateway`). */
export async function serveTeamTools(
  tools: TeamToolsServed | undefined,
  gateway?: AgentGatewayHandler,
): Promise<TeamToolSocket> {
  // Short path: unix socket paths are limited to ~107 bytes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-mcp-'));
  fs.chmodSync(dir, 0o700);
  const socketPath = path.join(dir, 's');
  const handler = tools?.handler;
  const toolKey = tools ? (tools.identity.key ?? tools.identity.turnKey) : undefined;
  const keyFile = tools && toolKey !== undefined ? path.join(dir, 'key') : undefined;
  if (keyFile) fs.writeFileSync(keyFile, toolKey!, { mode: 0o600 });
  const definitions = JSON.stringify(teamToolDefinitions());
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (tools && req.method === 'GET' && req.url === '/tools') {
      const refused = checkToolAccess(tools.identity, req.headers.authorization, undefined);
      if (refused) return send(refused.status, JSON.stringify({ error: refused.error }));
      return send(200, definitions);
    }
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
      const call = body as { agentId?: unknown; name?: unknown; arguments?: unknown };
      const refused = checkToolAccess(tools!.identity, req.headers.authorization, call.agentId);
      if (refused) {
        send(refused.status, JSON.stringify({ error: refused.error, text: refused.error, isError: true }));
        return;
      }
      void handler!(String(call.name), call.arguments).then((answer) => send(200, JSON.stringify(answer)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    path: socketPath,
    ...(keyFile ? { keyFile } : {}),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
