/**
 * The team endpoint agents talk to instead of Temporal. An agent's `orchestrator team request|task
 * done|message|status` runs inside its sandbox, where no cluster credentials may be (an API key or a client
 * key there is readable by the model's tools). So the agent's turn activity serves this endpoint on a private
 * unix socket for the duration of the turn (`ORCHESTRATOR_TEAM_SOCKET`, activities/team-tools/socket), and
 * forwards each request to Temporal with the worker's own connection. A request carries the agent's key
 * (`authorization: Bearer`, checked against the agent the turn runs) and, for requests to the team, the
 * agent's next capability proof is made from it, as before: the team still checks who is asking.
 */
import http from 'node:http';
import { z } from 'zod';
import { AgentNameSchema, RoleNameSchema } from './shared/team';

/** The environment variable naming the socket (set for the agent's process and its MCP server). */
export const TEAM_SOCKET_ENV = 'ORCHESTRATOR_TEAM_SOCKET';

/** The path agents' commands post to (the MCP server uses `/tools` and `/call`). */
export const AGENT_GATEWAY_PATH = '/agent';

const Base = { runId: z.string().min(1), agentId: z.string().min(1) };

/** One request of an agent's command. */
export const AgentGatewayRequestSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('request'),
    ...Base,
    role: RoleNameSchema,
    name: AgentNameSchema,
    instructions: z.string().min(1).max(200_000),
    /** Send signal spawnAgent and return at once, instead of update requestAgent. */
    signal: z.boolean().optional(),
  }),
  z.strictObject({
    op: z.literal('taskDone'),
    ...Base,
    task: z.string().min(1).optional(),
    all: z.boolean().optional(),
  }),
  z.strictObject({ op: z.literal('message'), ...Base, to: z.string().min(1), text: z.string().min(1) }),
  z.strictObject({ op: z.literal('status'), ...Base }),
]);
export type AgentGatewayRequest = z.infer<typeof AgentGatewayRequestSchema>;

/** A refusal or failure the endpoint answered with: its message is for the agent, one line. */
export class AgentGatewayError extends Error {
  override readonly name = 'AgentGatewayError';
}

/** Sends one request to the endpoint at `socketPath`; resolves with its result or throws its error. */
export function callAgentGateway(
  socketPath: string,
  key: string,
  req: AgentGatewayRequest,
): Promise<unknown> {
  const body = JSON.stringify(req);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        socketPath,
        path: AGENT_GATEWAY_PATH,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${key}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let answer: { result?: unknown; error?: unknown };
          try {
            answer = JSON.parse(text) as typeof answer;
          } catch {
            reject(new AgentGatewayError(`bad answer from the team endpoint (HTTP ${res.statusCode})`));
            return;
          }
          if (res.statusCode === 200) resolve(answer.result);
          else
            reject(
              new AgentGatewayError(
                typeof answer.error === 'string' ? answer.error : `HTTP ${res.statusCode}`,
              ),
            );
        });
      },
    );
    r.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new AgentGatewayError(
          `the team endpoint of this agent's turn is not reachable (${err.code ?? err.message}): is the turn over?`,
        ),
      ),
    );
    r.end(body);
  });
}
