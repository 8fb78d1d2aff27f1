#!/usr/bin/env node
// The team MCP server of one agent: a stdio MCP server (official SDK) that `claude` starts from its
// --mcp-config. It knows nothing itself: tools/list and tools/call are forwarded to the agent's own
// claudeTurn activity over the unix socket in ORCHESTRATOR_TEAM_SOCKET. That activity holds the agent's
// identity (run and agent id from its workflow's input), so nothing a model puts in a tool call can make
// it act as another agent. Every request carries the agent's key (read from the 0600 file the activity
// names in ORCHESTRATOR_TEAM_KEY_FILE) and each call the agent it is for: the socket answers no one else.
//
// Plain JavaScript with three imports, no tsx: it is on every agent's start path and must start fast.
import fs from 'node:fs';
import http from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const socketPath = process.env.ORCHESTRATOR_TEAM_SOCKET;
if (!socketPath) {
  process.stderr.write('team-mcp: ORCHESTRATOR_TEAM_SOCKET is not set (the claudeTurn activity sets it)\n');
  process.exit(2);
}

const keyFile = process.env.ORCHESTRATOR_TEAM_KEY_FILE;
const agentId = process.env.ORCHESTRATOR_TEAM_AGENT;
let key = '';
try {
  key = keyFile ? fs.readFileSync(keyFile, 'utf8').trim() : '';
} catch (err) {
  process.stderr.write(
    `team-mcp: cannot read the agent's key (${err instanceof Error ? err.message : err})\n`,
  );
}

/** One JSON request to the activity; resolves with its JSON answer (a refusal rejects with its reason). */
function ask(method, pathName, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const auth = key ? { authorization: `Bearer ${key}` } : {};
    const req = http.request(
      {
        socketPath,
        path: pathName,
        method,
        headers: data
          ? { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }
          : auth,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            const answer = JSON.parse(text);
            if (res.statusCode === 200) resolve(answer);
            else reject(new Error(String(answer.error ?? `HTTP ${res.statusCode}`)));
          } catch {
            reject(
              new Error(
                `bad answer from the agent's activity (HTTP ${res.statusCode}): ${text.slice(0, 200)}`,
              ),
            );
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

const server = new Server({ name: 'team', version: '1.0.0' }, { capabilities: { tools: {} } });

server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: await ask('GET', '/tools') }));

server.setRequestHandler(CallToolRequestSchema, async (req) => {
  try {
    const r = await ask('POST', '/call', {
      ...(agentId ? { agentId } : {}),
      name: req.params.name,
      arguments: req.params.arguments ?? {},
    });
    return { content: [{ type: 'text', text: String(r.text) }], isError: Boolean(r.isError) };
  } catch (err) {
    // The activity is gone (its turn ended or the worker died): say so; the model can retry later.
    const why = err instanceof Error ? err.message : String(err);
    return {
      content: [{ type: 'text', text: `the team service is not reachable right now (${why}); try again` }],
      isError: true,
    };
  }
});

await server.connect(new StdioServerTransport());
