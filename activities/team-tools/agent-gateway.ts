/**
 * The activity side of the team endpoint (src/agent-gateway): what an agent's `orchestrator team …`
 * command asks, done with the worker's Temporal client. The endpoint serves one agent's turn: a request must
 * carry that agent's key and name its team run; the requester it names is passed on as given, with the
 * proof made from the key, so that the team itself judges it (an intern naming its manager is refused
 * and audited as a spoof attempt, as when it talked to Temporal directly). A team that issues no
 * capabilities has no proof to judge: its agent's turn makes a key of its own (`newTurnKey`, given to the
 * agent's process alone), and the endpoint, having checked it, acts as the agent it serves and nobody
 * else. No request is ever taken without a key.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { AgentGatewayRequestSchema } from '../../src/agent-gateway';
import type { Logger } from '../../src/logger';
import { redact } from '../../src/redact';
import { markTaskDone, requestAgent, sendMessage, spawnAgent, TeamError, teamStatus } from '../../src/teams';
import type { TeamToolIdentity } from './handler';

export interface GatewayAnswer {
  status: number;
  body: { result?: unknown; error?: string };
}

/** Handles one request: `authorization` is the header as sent, `raw` the parsed JSON body. */
export type AgentGatewayHandler = (authorization: string | undefined, raw: unknown) => Promise<GatewayAnswer>;

/** Whether `authorization` (the header as sent) is `Bearer <key>`, compared in constant time. */
export function sameKey(authorization: string | undefined, key: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '');
  const want = Buffer.from(key);
  return given.length === want.length && timingSafeEqual(given, want);
}

const refuse = (status: number, error: string): GatewayAnswer => ({ status, body: { error } });

/** A key for one turn of an agent of a team without capabilities (never stored, never in history). */
export function newTurnKey(): string {
  return randomBytes(32).toString('base64url');
}

export function createAgentGateway(deps: {
  client: Client;
  identity: TeamToolIdentity;
  logger: Logger;
}): AgentGatewayHandler {
  const { client, identity, logger } = deps;
  return async (authorization, raw) => {
    const key = identity.key ?? identity.turnKey;
    if (key === undefined || !sameKey(authorization, key)) {
      return refuse(401, `not the key of ${identity.agentId}, the agent this team endpoint serves`);
    }
    const parsed = AgentGatewayRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return refuse(400, `bad request: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
    }
    const req = parsed.data;
    if (req.runId !== identity.runId) {
      return refuse(
        403,
        `an agent acts in its own team run only (${identity.runId}), not "${req.runId}" (is ORCHESTRATOR_RUN_ID right?)`,
      );
    }
    // The requester as the command named it, proven with this agent's key: the team checks the two agree.
    const creds = identity.key !== undefined ? { agentId: req.agentId, key: identity.key } : undefined;
    // Without a capability the team cannot check who asks: the endpoint acts as its own agent only.
    if (!creds && req.agentId !== identity.agentId) {
      return refuse(
        403,
        `this team endpoint serves ${identity.agentId}: a team without capabilities lets an agent act as itself only, not as "${req.agentId}"`,
      );
    }
    try {
      switch (req.op) {
        case 'request': {
          const spawn = { role: req.role, name: req.name, instructions: req.instructions };
          const asked = creds ? spawn : { ...spawn, requestedBy: req.agentId };
          if (req.signal) {
            await spawnAgent(client, req.runId, asked, creds);
            return { status: 200, body: { result: { sent: true } } };
          }
          return { status: 200, body: { result: await requestAgent(client, req.runId, asked, creds) } };
        }
        case 'taskDone':
          return {
            status: 200,
            body: {
              result: await markTaskDone(
                client,
                req.runId,
                req.agentId,
                { task: req.task, all: req.all },
                creds,
              ),
            },
          };
        case 'message':
          // Without a capability a message could only go out as the operator's: an agent never sends that.
          if (!creds) return refuse(403, 'this team issues no capabilities: agents cannot send messages');
          return {
            status: 200,
            body: { result: await sendMessage(client, req.runId, { to: req.to, text: req.text }, creds) },
          };
        case 'status':
          return { status: 200, body: { result: await teamStatus(client, req.runId) } };
      }
    } catch (err) {
      if (err instanceof TeamError) return refuse(400, err.message);
      if (err instanceof WorkflowNotFoundError) return refuse(404, `no team run "${err.workflowId}"`);
      const message = redact((err instanceof Error ? err.message : String(err)).split('\n')[0]!);
      logger.warn({ op: req.op, err }, 'team endpoint request failed');
      return refuse(500, `the team request failed: ${message}`);
    }
  };
}
