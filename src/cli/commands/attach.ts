/**
 * `orchestrator attach --list [--filter X]`: a team's agents grouped by role, with id, name, status,
 * start time, pid and cost. `attach <id>` opens an interactive shell in the agent's directory; with
 * `--log` it follows the agent's transcript instead.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Client } from '@temporalio/client';
import { type Command } from 'commander';
import pc from 'picocolors';
import type { TeamAgentRow, TeamStatus } from '../../shared/team';
import { agentPids, teamStatus, transcriptPath } from '../../teams';
import { CliError, printJson } from '../context';
import { formatUsd } from '../render';
import { agentIcon, withTeamRun } from './team';

/** The repository's bin/, which holds the `orchestrator` wrapper agents use. */
const BIN_DIR = fileURLToPath(new URL('../../../bin', import.meta.url));

export interface AgentListing {
  id: string;
  name: string;
  role: string;
  status: string;
  startedAt?: string;
  pid?: number;
  costUsd: number;
  dir: string;
}

/** Agents matching `filter` (a substring of id, name or role), grouped by role in order of appearance. */
export function groupAgents(
  s: TeamStatus,
  pids: Record<string, number>,
  filter?: string,
): Map<string, AgentListing[]> {
  const f = filter?.toLowerCase();
  const groups = new Map<string, AgentListing[]>();
  for (const a of s.agents) {
    if (f && ![a.id, a.name, a.role].some((x) => x.toLowerCase().includes(f))) continue;
    const list = groups.get(a.role) ?? [];
    list.push({
      id: a.id,
      name: a.name,
      role: a.role,
      status: a.state,
      startedAt: a.startedAt,
      pid: pids[a.id],
      costUsd: a.costUsd,
      dir: a.archivedTo ?? a.dir,
    });
    groups.set(a.role, list);
  }
  return groups;
}

export function renderAgentList(s: TeamStatus, groups: Map<string, AgentListing[]>): string {
  if (groups.size === 0) return `no agents match in team run ${s.runId}`;
  const lines: string[] = [];
  const all = [...groups.values()].flat();
  const idW = Math.max(2, ...all.map((a) => a.id.length));
  const nameW = Math.max(4, ...all.map((a) => a.name.length));
  for (const [role, agents] of groups) {
    lines.push(pc.bold(`${role} (${agents.length})`));
    for (const a of agents) {
      const row = s.agents.find((x) => x.id === a.id) as TeamAgentRow;
      lines.push(
        `  ${agentIcon(row)} ${a.id.padEnd(idW)}  ${a.name.padEnd(nameW)}  ${a.status.padEnd(9)}  ` +
          `${(a.startedAt ?? '-')
            .replace('T', ' ')
            .replace(/\.\d+Z$/, 'Z')
            .padEnd(20)}  ` +
          `pid ${String(a.pid ?? '-').padEnd(7)}  ${formatUsd(a.costUsd)}`,
      );
    }
  }
  return lines.join('\n');
}

function findAgent(s: TeamStatus, idOrName: string): TeamAgentRow {
  const a = s.agents.find((x) => x.id === idOrName) ?? s.agents.find((x) => x.name === idOrName);
  if (!a) {
    throw new CliError(
      `team run ${s.runId} has no agent "${idOrName}"; agents: ${s.agents.map((x) => x.id).join(', ') || 'none'}`,
    );
  }
  return a;
}

/** One readable line per stream-json line (assistant text, tool calls, tool results, the result). */
export function describeTranscriptLine(line: string): string | undefined {
  let ev: Record<string, unknown>;
  try {
    ev = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const clip = (t: string, n = 200) => (t.length > n ? `${t.slice(0, n)}…` : t).replace(/\s+/g, ' ');
  type Block = {
    type?: string;
    text?: string;
    name?: string;
    input?: Record<string, unknown>;
    content?: unknown;
    is_error?: boolean;
  };
  const blocks = ((ev.message as { content?: unknown } | undefined)?.content ?? []) as Block[];
  switch (ev.type) {
    case 'system':
      return ev.subtype === 'init'
        ? pc.dim(`[session ${String(ev.session_id)} · ${String(ev.model)}]`)
        : undefined;
    case 'assistant':
      return (Array.isArray(blocks) ? blocks : [])
        .map((b) =>
          b.type === 'text'
            ? `${pc.cyan('assistant')}: ${clip(b.text ?? '')}`
            : b.type === 'tool_use'
              ? `${pc.yellow('→')} ${b.name}: ${clip(toolSummary(b.input))}`
              : '',
        )
        .filter(Boolean)
        .join('\n');
    case 'user':
      return (Array.isArray(blocks) ? blocks : [])
        .filter((b) => b.type === 'tool_result')
        .map((b) => {
          const text = typeof b.content === 'string' ? b.content : JSON.stringify(b.content ?? '');
          return `${b.is_error ? pc.red('←') : pc.green('←')} ${clip(text)}`;
        })
        .join('\n');
    case 'result':
      return pc.bold(
        `[result ${String(ev.subtype)} · ${String(ev.num_turns)} turns · $${Number(ev.total_cost_usd ?? 0).toFixed(4)}]`,
      );
    default:
      return undefined;
  }
}

function toolSummary(input: Record<string, unknown> | undefined): string {
  const v = input?.command ?? input?.file_path;
  return typeof v === 'string' ? v : JSON.stringify(input ?? {});
}

/** Prints a transcript and follows it until the agent has finished (and everything is printed). */
async function followLog(client: Client, s: TeamStatus, agent: TeamAgentRow, raw: boolean): Promise<void> {
  const file = transcriptPath(s, agent.id);
  let offset = 0;
  let partial = '';
  let finished = false;
  let lastCheck = 0;
  process.stderr.write(pc.dim(`following ${file} (Ctrl-C to stop)\n`));
  for (;;) {
    if (fs.existsSync(file)) {
      const size = fs.statSync(file).size;
      if (size > offset) {
        const fd = fs.openSync(file, 'r');
        const buf = Buffer.alloc(size - offset);
        fs.readSync(fd, buf, 0, buf.length, offset);
        fs.closeSync(fd);
        offset = size;
        const text = partial + buf.toString('utf8');
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const out = raw || s.backend !== 'cli' ? line : describeTranscriptLine(line);
          if (out) process.stdout.write(out + '\n');
        }
        continue;
      }
    }
    if (finished) return;
    if (Date.now() - lastCheck > 1000) {
      lastCheck = Date.now();
      const now = await teamStatus(client, s.runId).catch(() => undefined);
      const row = now?.agents.find((a) => a.id === agent.id);
      // One more read after the agent finished, so its last lines are printed.
      finished = !row || !['starting', 'running'].includes(row.state) || now?.state !== 'running';
    }
    await delay(200);
  }
}

/** An interactive shell in the agent's directory, with the agent's team environment. */
async function openShell(s: TeamStatus, agent: TeamAgentRow): Promise<number> {
  const dir = agent.archivedTo ?? agent.dir;
  if (!fs.existsSync(dir)) throw new CliError(`the directory of ${agent.id} does not exist (yet): ${dir}`);
  const shell = process.env.SHELL || '/bin/sh';
  process.stderr.write(
    pc.dim(`attached to ${agent.id} (${agent.name}, ${agent.state}) in ${dir}; exit the shell to detach\n`),
  );
  const child = spawn(shell, [], {
    cwd: dir,
    stdio: 'inherit',
    env: {
      ...process.env,
      ORCHESTRATOR_RUN_ID: s.runId,
      ORCHESTRATOR_AGENT_ID: agent.id,
      PATH: [BIN_DIR, process.env.PATH ?? ''].join(path.delimiter),
    },
  });
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new CliError(`cannot start ${shell}: ${err.message}`)));
    child.once('exit', (code) => resolve(code ?? 0));
  });
}

export function registerAttachCommand(program: Command): void {
  program
    .command('attach [agentId]')
    .description(
      "list a team's agents, or open a shell in an agent's directory (--log: follow its transcript)",
    )
    .option('--list', 'list the agents, grouped by role')
    .option('--filter <text>', 'with --list: only agents whose id, name or role contains the text')
    .option('--log', "follow the agent's transcript instead of opening a shell")
    .option('--raw', 'with --log: print the transcript lines as they are')
    .option('--run <runId>', 'team run (default: $ORCHESTRATOR_RUN_ID, else the latest)')
    .option('--json', 'with --list: print JSON')
    .action(
      async (
        agentId: string | undefined,
        opts: { list?: boolean; filter?: string; log?: boolean; raw?: boolean; run?: string; json?: boolean },
        cmd: Command,
      ) => {
        await withTeamRun(cmd, opts.run, async (client, runId) => {
          const s = await teamStatus(client, runId);
          if (opts.list || !agentId) {
            const groups = groupAgents(s, await agentPids(client, s), opts.filter);
            if (opts.json) return printJson([...groups.values()].flat());
            process.stdout.write(renderAgentList(s, groups) + '\n');
            return;
          }
          const agent = findAgent(s, agentId);
          if (opts.log) return followLog(client, s, agent, Boolean(opts.raw));
          process.exitCode = await openShell(s, agent);
        });
      },
    );
}
