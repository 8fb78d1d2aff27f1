/**
 * What the team tools do, for one agent. The identity (team run and agent id) is fixed when the handler
 * is made, from the agent's workflow input; the model's arguments never name who is acting. Every answer
 * is a text the model can act on; failures come back as `isError` results, never as thrown errors.
 */
import { type Client, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Logger } from '../../src/logger';
import {
  agentInboxQuery,
  reportStatusSignal,
  sendMessageUpdate,
  teamAgentWorkflowId,
} from '../../src/shared/team';
import {
  type AgentCredentials,
  markTaskDone,
  requestAgent,
  sendMessage,
  SpawnRefusedError,
  spawnOutcome,
  TeamError,
  teamStatus,
} from '../../src/teams';
import { isTeamTool, TEAM_TOOL_SCHEMAS, TEAM_TOOL_NAMES } from './definitions';

export interface ToolAnswer {
  text: string;
  isError: boolean;
}

export interface TeamToolIdentity {
  /** The team run (teamWorkflow id). */
  runId: string;
  /** The acting agent's id, e.g. `manager-1`. */
  agentId: string;
  /**
   * The agent's secret (from its capability file): requests prove they come from this agent, as the
   * agent's own `orchestrator team …` commands do. Absent for teams without capabilities.
   */
  key?: string;
  /**
   * For a team without capabilities: a secret made for this turn alone (./agent-gateway `newTurnKey`),
   * handed to the agent's process as its key. The endpoint checks it, and then acts as this agent only.
   */
  turnKey?: string;
}

export type TeamToolHandler = (name: string, args: unknown) => Promise<ToolAnswer>;

const ok = (text: string): ToolAnswer => ({ text, isError: false });
const fail = (text: string): ToolAnswer => ({ text, isError: true });

export function createTeamToolHandler(deps: {
  client: Client;
  identity: TeamToolIdentity;
  logger: Logger;
}): TeamToolHandler {
  const { client, identity, logger } = deps;
  const { runId, agentId } = identity;
  const creds: AgentCredentials | undefined = identity.key ? { agentId, key: identity.key } : undefined;
  const own = () => client.workflow.getHandle(teamAgentWorkflowId(runId, agentId));
  let readUpTo = 0;

  async function run(name: string, raw: unknown): Promise<ToolAnswer> {
    if (!isTeamTool(name)) return fail(`unknown tool "${name}"; tools: ${TEAM_TOOL_NAMES.join(', ')}`);
    const parsed = TEAM_TOOL_SCHEMAS[name].safeParse(raw ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`);
      return fail(`invalid arguments for ${name}: ${issues.join('; ')}`);
    }
    switch (name) {
      case 'request_teammate': {
        const a = TEAM_TOOL_SCHEMAS.request_teammate.parse(parsed.data);
        try {
          const r = await requestAgent(client, runId, { ...a, requestedBy: agentId }, creds);
          return ok(
            `${r.role} "${r.name}" ${spawnOutcome(r)}: agent id ${r.agentId} (${r.state}); its directory is ${r.dir}`,
          );
        } catch (err) {
          if (err instanceof SpawnRefusedError) return fail(`request refused: ${err.reason}`);
          throw err;
        }
      }
      case 'message_teammate': {
        const a = TEAM_TOOL_SCHEMAS.message_teammate.parse(parsed.data);
        // Without a capability the team takes the sender as named (teams started before capabilities).
        const r = creds
          ? await sendMessage(client, runId, a, creds)
          : await client.workflow
              .getHandle(runId)
              .executeUpdate(sendMessageUpdate, { args: [{ ...a, from: agentId }] })
              .catch((err: unknown) => {
                if (err instanceof WorkflowUpdateFailedError)
                  throw new TeamError(`message not delivered: ${err.cause?.message ?? err.message}`);
                throw err;
              });
        return ok(`message delivered to ${r.to} (${r.name}, ${r.state})`);
      }
      case 'read_messages': {
        const inbox = await own().query(agentInboxQuery, readUpTo);
        if (inbox.length === 0) return ok('no new messages');
        readUpTo = Math.max(readUpTo, ...inbox.map((m) => m.seq));
        return ok(inbox.map((m) => `[${m.seq}] from ${m.from} at ${m.at}:\n${m.text}`).join('\n\n'));
      }
      case 'list_team': {
        const s = await teamStatus(client, runId);
        const rows = s.agents.map(
          (a) =>
            `${a.id} · ${a.role} · ${a.name} · ${a.state} · tasks ${a.tasks.completed}/${a.tasks.total}` +
            (a.note ? ` · "${a.note}"` : '') +
            (a.id === agentId ? ' (you)' : ''),
        );
        return ok([`team ${s.runId} (${s.state}): ${s.goal}`, ...rows].join('\n'));
      }
      case 'complete_task': {
        const { task } = TEAM_TOOL_SCHEMAS.complete_task.parse(parsed.data);
        const all = task.toLowerCase() === 'all';
        const r = await markTaskDone(client, runId, agentId, all ? { all: true } : { task }, creds);
        return ok(
          `marked ${all ? 'all tasks' : `task ${task}`} done; ${r.remaining} of ${r.tasks.length} left` +
            (r.remaining
              ? `: ${r.tasks
                  .filter((t) => t.status !== 'completed')
                  .map((t) => t.id)
                  .join(', ')}`
              : ''),
        );
      }
      case 'report_status': {
        const { text } = TEAM_TOOL_SCHEMAS.report_status.parse(parsed.data);
        await own().signal(reportStatusSignal, { text });
        return ok('status reported');
      }
    }
  }

  return async (name, args) => {
    // One retry for a transient failure (an RPC timeout under load): every tool is safe to repeat
    // (requests are deduplicated by name, task marks and status reports are idempotent).
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await run(name, args);
        logger.info({ tool: name, isError: answer.isError }, 'team tool call');
        return answer;
      } catch (err) {
        const message = err instanceof Error ? `${err.name}: ${err.message || 'no details'}` : String(err);
        logger.warn({ tool: name, error: message, attempt }, 'team tool call failed');
        if (err instanceof TeamError) return fail(err.message);
        if (attempt >= 2) return fail(`${name} failed: ${message}; try again`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
}
