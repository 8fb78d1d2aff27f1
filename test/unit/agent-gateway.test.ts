/**
 * The team endpoint of an agent's turn (activities/team-tools/agent-gateway): it takes no request without
 * the turn's key, and for a team without capabilities (no proof the team could check) it acts as the agent
 * it serves only, whatever agent id a request names. The MCP server's routes (`GET /tools`, `POST /call`)
 * take the same key and act as that agent only, and the real MCP server (bin/team-mcp.mjs) sends it.
 */
import fs from 'node:fs';
import http from 'node:http';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { createAgentGateway, newTurnKey } from '../../activities/team-tools/agent-gateway';
import type { ToolAnswer } from '../../activities/team-tools/handler';
import {
  serveTeamTools,
  TEAM_AGENT_ENV,
  TEAM_KEY_FILE_ENV,
  TEAM_MCP_SCRIPT,
  TEAM_SOCKET_ENV,
} from '../../activities/team-tools/socket';
import { createLogger } from '../../src/logger';

const logger = createLogger('silent', { component: 'test' });

/** A client that records which workflow each request reached, then fails it (nothing runs here). */
function recordingClient(reached: string[]): Client {
  const fail = () => Promise.reject(new Error('no server in unit tests'));
  return {
    workflow: {
      getHandle: (id: string) => {
        reached.push(id);
        return { executeUpdate: fail, startUpdate: fail, query: fail, describe: fail, signal: fail };
      },
    },
  } as unknown as Client;
}

const taskDone = (agentId: string) => ({ op: 'taskDone', runId: 'team-1', agentId, all: true });

describe('agent gateway', () => {
  it('refuses every request without a key when the endpoint has none', async () => {
    const reached: string[] = [];
    const gateway = createAgentGateway({
      client: recordingClient(reached),
      identity: { runId: 'team-1', agentId: 'intern-1' },
      logger,
    });
    for (const auth of [undefined, 'Bearer ', 'Bearer anything']) {
      const a = await gateway(auth, taskDone('intern-1'));
      expect(a.status, String(auth)).toBe(401);
    }
    expect(reached).toEqual([]);
  });

  it("a team without capabilities: the turn's key is checked, and the agent acts as itself only", async () => {
    const reached: string[] = [];
    const turnKey = newTurnKey();
    expect(turnKey).not.toBe(newTurnKey());
    expect(turnKey.length).toBeGreaterThanOrEqual(40);
    const gateway = createAgentGateway({
      client: recordingClient(reached),
      identity: { runId: 'team-1', agentId: 'intern-1', turnKey },
      logger,
    });
    expect((await gateway('Bearer wrong', taskDone('intern-1'))).status).toBe(401);
    // The intern names its manager: refused before anything reaches Temporal.
    const spoof = await gateway(`Bearer ${turnKey}`, taskDone('manager-1'));
    expect(spoof.status).toBe(403);
    expect(spoof.body.error).toMatch(/serves intern-1.*not as "manager-1"/);
    const asManager = await gateway(`Bearer ${turnKey}`, {
      op: 'request',
      runId: 'team-1',
      agentId: 'manager-1',
      role: 'intern',
      name: 'helper',
      instructions: 'help',
    });
    expect(asManager.status).toBe(403);
    expect(reached).toEqual([]);
    // As itself: the request reaches its own workflow.
    const own = await gateway(`Bearer ${turnKey}`, taskDone('intern-1'));
    expect(own.status).toBe(500);
    expect(reached).toEqual(['team-1/intern-1']);
  });

  it('a team with capabilities: the capability key is the key, and a named requester goes on for the team to judge', async () => {
    const reached: string[] = [];
    const gateway = createAgentGateway({
      client: recordingClient(reached),
      identity: { runId: 'team-1', agentId: 'intern-1', key: 'cap-secret' },
      logger,
    });
    expect((await gateway('Bearer other', taskDone('intern-1'))).status).toBe(401);
    await gateway('Bearer cap-secret', taskDone('manager-1'));
    // Passed on with a proof made from intern-1's key: the team refuses and audits it as a spoof attempt.
    expect(reached.length).toBeGreaterThan(0);
  });
});

/** One HTTP request to the socket: status and parsed body. */
function ask(
  socketPath: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        socketPath,
        path: urlPath,
        method,
        headers: data ? { ...headers, 'content-type': 'application/json' } : headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
          }),
        );
      },
    );
    r.on('error', reject);
    r.end(data);
  });
}

describe("the MCP server's routes", () => {
  it('take no tool list or call without the key (401), with another key or as another agent (403)', async () => {
    const calls: string[] = [];
    const turnKey = newTurnKey();
    const socket = await serveTeamTools({
      handler: (name) => {
        calls.push(name);
        return Promise.resolve<ToolAnswer>({ text: `ran ${name}`, isError: false });
      },
      identity: { agentId: 'intern-1', turnKey },
    });
    try {
      // The key is in a file only the worker's user reads, for the MCP server; never in its argv.
      expect(fs.readFileSync(socket.keyFile!, 'utf8')).toBe(turnKey);
      expect(fs.statSync(socket.keyFile!).mode & 0o777).toBe(0o600);
      const call = { agentId: 'intern-1', name: 'list_team', arguments: {} };
      const right = { authorization: `Bearer ${turnKey}` };
      for (const [headers, status] of [
        [{}, 401],
        [{ authorization: 'Bearer ' }, 401],
        [{ authorization: 'Bearer wrong' }, 403],
      ] as const) {
        expect((await ask(socket.path, 'GET', '/tools', headers)).status, JSON.stringify(headers)).toBe(
          status,
        );
        const a = await ask(socket.path, 'POST', '/call', headers, call);
        expect(a.status, JSON.stringify(headers)).toBe(status);
        expect(a.body.isError).toBe(true);
      }
      const asOther = await ask(socket.path, 'POST', '/call', right, { ...call, agentId: 'manager-1' });
      expect(asOther.status).toBe(403);
      expect(asOther.body.error).toMatch(/serves intern-1.*not as "manager-1"/);
      expect(calls).toEqual([]);
      // The right key, as itself: the tools are listed and the call runs.
      const tools = await ask(socket.path, 'GET', '/tools', right);
      expect(tools.status).toBe(200);
      expect(await ask(socket.path, 'POST', '/call', right, call)).toEqual({
        status: 200,
        body: { text: 'ran list_team', isError: false },
      });
      expect(calls).toEqual(['list_team']);
    } finally {
      await socket.close();
    }
    expect(fs.existsSync(socket.keyFile!)).toBe(false);
  });

  it('the team MCP server sends the key and its agent, as claude starts it', async () => {
    const calls: string[] = [];
    const socket = await serveTeamTools({
      handler: (name) => {
        calls.push(name);
        return Promise.resolve<ToolAnswer>({ text: `ran ${name}`, isError: false });
      },
      identity: { agentId: 'intern-1', key: 'cap-secret' },
    });
    const start = async (env: Record<string, string>) => {
      const mcp = new McpClient({ name: 'test', version: '1.0.0' });
      await mcp.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: [TEAM_MCP_SCRIPT],
          env: { PATH: process.env.PATH ?? '', [TEAM_SOCKET_ENV]: socket.path, ...env },
          stderr: 'ignore',
        }),
      );
      return mcp;
    };
    try {
      const mcp = await start({ [TEAM_KEY_FILE_ENV]: socket.keyFile!, [TEAM_AGENT_ENV]: 'intern-1' });
      try {
        expect((await mcp.listTools()).tools.map((t) => t.name)).toContain('list_team');
        const r = await mcp.callTool({ name: 'list_team', arguments: {} });
        expect(r).toMatchObject({ isError: false, content: [{ type: 'text', text: 'ran list_team' }] });
      } finally {
        await mcp.close();
      }
      // Told another agent: the call is refused, and the model reads why.
      const other = await start({ [TEAM_KEY_FILE_ENV]: socket.keyFile!, [TEAM_AGENT_ENV]: 'manager-1' });
      try {
        const r = await other.callTool({ name: 'list_team', arguments: {} });
        expect(r.isError).toBe(true);
        expect(JSON.stringify(r.content)).toContain('serves intern-1');
      } finally {
        await other.close();
      }
      expect(calls).toEqual(['list_team']);
    } finally {
      await socket.close();
    }
  });
});
