/**
 * `orchestrator team start|status|stop|request|task done` and `orchestrator track`.
 *
 * `team request` and `team task done` are what agents run from inside their own process: the run, the
 * agent and its secret come from ORCHESTRATOR_RUN_ID, ORCHESTRATOR_AGENT_ID and ORCHESTRATOR_AGENT_KEY,
 * Temporal from TEMPORAL_ADDRESS. No flag names another requester: a request proves the identity of the
 * agent whose secret made it (src/shared/identity).
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { type Command, InvalidArgumentError, Option } from 'commander';
import logUpdate from 'log-update';
import pc from 'picocolors';
import { loadHierarchyPolicy } from '../../../config/hierarchy';
import {
  AgentNameSchema,
  type MessageResult,
  RoleNameSchema,
  type SpawnResult,
  type TaskDoneResult,
  type TeamAgentRow,
  type TeamStatus,
} from '../../shared/team';
import {
  agentCredentialsFromEnv,
  agentPids,
  latestTeamRunId,
  markTaskDone,
  requestAgent,
  sendMessage,
  spawnAgent,
  spawnOutcome,
  startTeam,
  stopTeam,
  TeamError,
  teamStatus,
} from '../../teams';
import type { AppConfig } from '../../../config/env';
import { startRehearsal } from '../../rehearsal';
import {
  AgentGatewayError,
  type AgentGatewayRequest,
  callAgentGateway,
  TEAM_SOCKET_ENV,
} from '../../agent-gateway';
import { CliError, configFrom, loggerFor, printJson, withClient } from '../context';
import { withLocalWorker } from '../local-worker';
import { formatUsd } from '../render';
import { parseTokens, parseUsd } from './budget';

/** Runs `fn` with a connected client; team errors become one-line CLI errors. */
function withTeamClient<T>(
  cmd: Command,
  fn: (client: Client, config: ReturnType<typeof configFrom>) => Promise<T>,
): Promise<T> {
  return withClient(cmd, fn, (err) => {
    if (err instanceof TeamError) return new CliError(err.message);
    if (err instanceof WorkflowNotFoundError) return new CliError(`no team run "${err.workflowId}"`);
    return undefined;
  });
}

/** The team run to act on: the argument, else ORCHESTRATOR_RUN_ID, else the latest team run. */
async function resolveTeamRunId(client: Client, arg: string | undefined): Promise<string> {
  return arg ?? process.env.ORCHESTRATOR_RUN_ID ?? (await latestTeamRunId(client));
}

/** {@link withTeamClient} for a command about one team run: `fn` gets the run ({@link resolveTeamRunId}). */
export function withTeamRun<T>(
  cmd: Command,
  arg: string | undefined,
  fn: (client: Client, runId: string, config: ReturnType<typeof configFrom>) => Promise<T>,
): Promise<T> {
  return withTeamClient(cmd, async (client, config) =>
    fn(client, await resolveTeamRunId(client, arg), config),
  );
}

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`must be a whole number >= 0, got "${v}"`);
  return n;
}

function collectInstructions(v: string, acc: Record<string, string>): Record<string, string> {
  const m = /^([a-z][a-z0-9-]*)=(.+)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`must be <role>=<file>, e.g. manager=plan.md (got "${v}")`);
  return { ...acc, [m[1]!]: m[2]! };
}

/**
 * The calling agent's credentials, from its environment. Outside an agent there are none: the operator
 * acts through `team start`, `team stop` and the other operator commands, never as an agent.
 */
function requireAgent(what: string) {
  const creds = agentCredentialsFromEnv();
  if (!creds) {
    throw new CliError(
      `${what} is run by team agents: it needs ORCHESTRATOR_AGENT_ID and ORCHESTRATOR_AGENT_KEY, which the orchestrator gives each agent's process (an operator adds agents with team start)`,
      2,
    );
  }
  return creds;
}

/**
 * Inside a team agent's turn: a function that sends a request to the turn's team endpoint (which forwards
 * it with the worker's Temporal connection); undefined outside one (the operator's shell talks to Temporal).
 */
function agentEndpoint(): ((key: string, req: AgentGatewayRequest) => Promise<unknown>) | undefined {
  const socket = process.env[TEAM_SOCKET_ENV];
  if (!socket) return undefined;
  return (key, req) =>
    callAgentGateway(socket, key, req).catch((err: unknown) => {
      throw err instanceof AgentGatewayError ? new CliError(err.message) : err;
    });
}

/** Reads an instructions file, or fails with a message naming the path. */
export function readInstructionsFile(file: string): string {
  const full = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`instructions file not found: ${file} (looked for ${full})`, 2);
    throw new CliError(`cannot read instructions file ${full}: ${code ?? String(err)}`, 2);
  }
  if (!text.trim()) throw new CliError(`instructions file ${full} is empty`, 2);
  return text;
}

export function registerTeamCommands(program: Command): void {
  const team = program
    .command('team')
    .description('dynamic teams of agents that request teammates at run time');

  team
    .command('start <goal>')
    .description('start a team (a manager and an architect, plus engineers and interns if asked)')
    .option('--engineers <n>', 'software engineers to start with', count, 0)
    .option('--interns <n>', 'interns to start with', count, 0)
    .option('--workspace <dir>', 'directory the agents work in (default: the current directory)')
    .addOption(new Option('--backend <backend>', 'agent backend').choices(['cli', 'script']).default('cli'))
    .option('--policy <file>', 'hierarchy policy YAML (default config/team/hierarchy.yaml)')
    .option(
      '--instructions <role=file>',
      'instructions of a starting agent, by role (repeatable)',
      collectInstructions,
      {} as Record<string, string>,
    )
    .option('--run-id <id>', 'workflow id to use')
    .option('--max-usd <usd>', 'what the whole team may spend, in US dollars', parseUsd)
    .option('--max-tokens <n>', 'what the whole team may spend, in tokens (every kind counts)', parseTokens)
    .option('--wait', 'show the live dashboard until the team finishes')
    .option(
      '--rehearse',
      'zero tokens: agents talk to a local Messages-API server and this process runs the worker (implies --wait)',
    )
    .option('--json', 'print JSON')
    .action(
      async (
        goal: string,
        opts: {
          engineers: number;
          interns: number;
          workspace?: string;
          backend: 'cli' | 'script';
          policy?: string;
          instructions: Record<string, string>;
          runId?: string;
          maxUsd?: number;
          maxTokens?: number;
          wait?: boolean;
          rehearse?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        // Everything local is checked before anything talks to Temporal.
        const policy = loadHierarchyPolicy(opts.policy);
        const instructions = Object.fromEntries(
          Object.entries(opts.instructions).map(([role, file]) => {
            if (!policy.roles[role]) {
              throw new CliError(
                `--instructions: unknown role "${role}" (roles: ${Object.keys(policy.roles).join(', ')})`,
                2,
              );
            }
            return [role, readInstructionsFile(file)];
          }),
        );
        const start = (client: Client, config: AppConfig) =>
          startTeam(client, {
            goal,
            workspace: opts.workspace ?? process.cwd(),
            outputsDir: config.outputsDir,
            policy,
            engineers: opts.engineers,
            interns: opts.interns,
            backend: opts.backend,
            instructions,
            taskQueue: config.temporal.taskQueue,
            runId: opts.runId,
            budget: { usd: opts.maxUsd, tokens: opts.maxTokens },
          });
        const follow = async (client: Client, runId: string) => {
          const final = await trackTeam(client, runId, { json: Boolean(opts.json) });
          if (opts.json) printJson(final);
          if (final.state !== 'completed' || final.agents.some((a) => a.state === 'failed'))
            process.exitCode = 1;
        };
        if (opts.rehearse) {
          const base = configFrom(cmd);
          const rehearsal = await startRehearsal({
            ...base,
            // Only this process's worker, pointed at the local model server, serves this queue.
            temporal: { ...base.temporal, taskQueue: `rehearse-${process.pid}-${Date.now()}` },
          });
          if (!opts.json)
            process.stderr.write(pc.yellow(`rehearsal: agents use ${rehearsal.server.url} (zero tokens)\n`));
          try {
            await withLocalWorker(
              rehearsal.config,
              loggerFor({ ...rehearsal.config, logLevel: 'warn' }),
              async (client) => {
                const { runId } = await start(client, rehearsal.config);
                await follow(client, runId);
                // This process's worker is the team's only one: the status can say "completed" a task before
                // the workflow closes, and a team left open without a worker could never be read again.
                await client.workflow
                  .getHandle(runId)
                  .result()
                  .catch(() => undefined);
              },
            );
          } catch (err) {
            throw err instanceof TeamError ? new CliError(err.message) : err;
          } finally {
            await rehearsal.close();
          }
          return;
        }
        await withTeamClient(cmd, async (client, config) => {
          const input = await start(client, config);
          if (opts.wait) return follow(client, input.runId);
          if (opts.json) return printJson({ runId: input.runId, workspace: input.workspace });
          const out = process.stdout;
          out.write(`started team run ${pc.bold(input.runId)} in ${input.workspace}\n`);
          out.write(`  status:    orchestrator team status ${input.runId}\n`);
          out.write(`  dashboard: orchestrator track ${input.runId}\n`);
          out.write(`  agents:    orchestrator attach --list --run ${input.runId}\n`);
          out.write(`  needs a worker on task queue "${config.temporal.taskQueue}": orchestrator worker\n`);
        });
      },
    );

  team
    .command('status [runId]')
    .description('show a team run: agents, tasks, costs and refused requests (default: the latest)')
    .option('--json', 'print JSON')
    .action(async (runIdArg: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const viaTurn = agentEndpoint();
      const creds = agentCredentialsFromEnv();
      const ownRun = runIdArg ?? process.env.ORCHESTRATOR_RUN_ID;
      if (viaTurn && creds && ownRun) {
        const s = (await viaTurn(creds.key, {
          op: 'status',
          runId: ownRun,
          agentId: creds.agentId,
        })) as TeamStatus;
        if (opts.json) printJson(s);
        else process.stdout.write(renderTeamStatus(s) + '\n');
        return;
      }
      await withTeamRun(cmd, runIdArg, async (client, runId) => {
        const s = await teamStatus(client, runId);
        if (opts.json) printJson(s);
        else process.stdout.write(renderTeamStatus(s) + '\n');
      });
    });

  team
    .command('stop [runId]')
    .description("stop a team run: every agent's process is ended")
    .option('--reason <text>', 'why (goes into the audit trail)')
    .action(async (runIdArg: string | undefined, opts: { reason?: string }, cmd: Command) => {
      await withTeamRun(cmd, runIdArg, async (client, runId) => {
        await stopTeam(client, runId, opts.reason);
        process.stdout.write(`stopping team run ${runId}\n`);
      });
    });

  team
    .command('request')
    .description('request a teammate (run by agents; the run and requester come from the environment)')
    .requiredOption('--role <role>', 'role of the teammate, e.g. software-engineer')
    .requiredOption('--name <name>', 'unique name of the teammate, e.g. api-dev')
    .requiredOption(
      '--instructions-file <file>',
      'markdown file with its instructions (bullets become tasks)',
    )
    .option('--run <runId>', 'team run (default: $ORCHESTRATOR_RUN_ID)')
    .option('--signal', 'send signal spawnAgent instead of waiting for the outcome')
    .option('--json', 'print JSON')
    .action(
      async (
        opts: {
          role: string;
          name: string;
          instructionsFile: string;
          run?: string;
          signal?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const role = RoleNameSchema.safeParse(opts.role);
        if (!role.success)
          throw new CliError(`--role: ${role.error.issues[0]?.message} (got "${opts.role}")`, 2);
        const name = AgentNameSchema.safeParse(opts.name);
        if (!name.success)
          throw new CliError(`--name: ${name.error.issues[0]?.message} (got "${opts.name}")`, 2);
        const instructions = readInstructionsFile(opts.instructionsFile);
        const runId = opts.run ?? process.env.ORCHESTRATOR_RUN_ID;
        if (!runId) throw new CliError('no team run: pass --run <runId> or set ORCHESTRATOR_RUN_ID', 2);
        const creds = requireAgent('team request');
        const req = { role: opts.role, name: opts.name, instructions };
        const viaTurn = agentEndpoint();
        if (viaTurn) {
          const r = await viaTurn(creds.key, {
            op: 'request',
            runId,
            agentId: creds.agentId,
            ...req,
            ...(opts.signal ? { signal: true } : {}),
          });
          if (opts.signal) {
            if (opts.json) printJson(r);
            else process.stdout.write(`sent spawnAgent for ${opts.role} "${opts.name}" to ${runId}\n`);
            return;
          }
          const s = r as SpawnResult;
          if (opts.json) return printJson(s);
          process.stdout.write(
            `${s.role} "${s.name}" ${spawnOutcome(s)}: agent ${pc.bold(s.agentId)} (${s.state}), directory ${s.dir}\n`,
          );
          return;
        }
        await withTeamClient(cmd, async (client) => {
          if (opts.signal) {
            await spawnAgent(client, runId, req, creds);
            if (opts.json) printJson({ sent: true });
            else process.stdout.write(`sent spawnAgent for ${opts.role} "${opts.name}" to ${runId}\n`);
            return;
          }
          const r = await requestAgent(client, runId, req, creds);
          if (opts.json) return printJson(r);
          process.stdout.write(
            `${r.role} "${r.name}" ${spawnOutcome(r)}: agent ${pc.bold(r.agentId)} (${r.state}), directory ${r.dir}\n`,
          );
        });
      },
    );

  team
    .command('message <agent> <text>')
    .description('send a message to a running agent (id or name); it reaches its session within seconds')
    .option('--run <runId>', 'team run (default: $ORCHESTRATOR_RUN_ID, else the latest)')
    .option('--json', 'print JSON')
    .action(async (agent: string, text: string, opts: { run?: string; json?: boolean }, cmd: Command) => {
      if (!text.trim()) throw new CliError('the message is empty', 2);
      const viaTurn = agentEndpoint();
      const creds = agentCredentialsFromEnv();
      if (viaTurn && creds) {
        const runId = opts.run ?? process.env.ORCHESTRATOR_RUN_ID;
        if (!runId) throw new CliError('no team run: pass --run <runId> or set ORCHESTRATOR_RUN_ID', 2);
        const r = (await viaTurn(creds.key, {
          op: 'message',
          runId,
          agentId: creds.agentId,
          to: agent,
          text,
        })) as MessageResult;
        if (opts.json) return printJson(r);
        process.stdout.write(`message delivered to ${r.to} (${r.name}, ${r.state})\n`);
        return;
      }
      await withTeamRun(cmd, opts.run, async (client, runId) => {
        // The sender is never a flag: an agent's own credentials prove it; without them it is the operator.
        const r = await sendMessage(client, runId, { to: agent, text }, agentCredentialsFromEnv());
        if (opts.json) return printJson(r);
        process.stdout.write(`message delivered to ${r.to} (${r.name}, ${r.state})\n`);
      });
    });

  const task = team.command('task').description("mark an agent's tasks done (run by agents)");
  task
    .command('done [task]')
    .description('mark a task of this agent done (its id, e.g. t1, or its text)')
    .option('--all', 'mark every task done: the agent reports its work done')
    .option('--run <runId>', 'team run (default: $ORCHESTRATOR_RUN_ID)')
    .option('--json', 'print JSON')
    .action(
      async (
        taskArg: string | undefined,
        opts: { all?: boolean; run?: string; json?: boolean },
        cmd: Command,
      ) => {
        if (!taskArg && !opts.all) throw new CliError('name a task (e.g. t1) or pass --all', 2);
        const runId = opts.run ?? process.env.ORCHESTRATOR_RUN_ID;
        if (!runId) throw new CliError('no team run: pass --run <runId> or set ORCHESTRATOR_RUN_ID', 2);
        const creds = requireAgent('team task done');
        const agentId = creds.agentId;
        const viaTurn = agentEndpoint();
        const print = (r: TaskDoneResult) => {
          if (opts.json) return printJson(r);
          const what = opts.all ? 'all tasks' : `task ${taskArg}`;
          process.stdout.write(
            `marked ${what} of ${agentId} done; ${r.remaining} of ${r.tasks.length} left\n`,
          );
        };
        if (viaTurn) {
          const r = await viaTurn(creds.key, {
            op: 'taskDone',
            runId,
            agentId,
            ...(taskArg ? { task: taskArg } : {}),
            ...(opts.all ? { all: true } : {}),
          });
          return print(r as TaskDoneResult);
        }
        await withTeamClient(cmd, async (client) => {
          print(await markTaskDone(client, runId, agentId, { task: taskArg, all: opts.all }, creds));
        });
      },
    );

  program
    .command('track [runId]')
    .description('live dashboard of a team run, refreshed from its status query (default: the latest)')
    .option('--interval <ms>', 'refresh interval', (v) => Number(v), 500)
    .action(async (runIdArg: string | undefined, opts: { interval: number }, cmd: Command) => {
      await withTeamRun(cmd, runIdArg, async (client, runId) => {
        await trackTeam(client, runId, { intervalMs: opts.interval });
      });
    });
}

/**
 * Redraws the dashboard until the team run ends (or forever while it runs); returns the final status.
 * Without a TTY (or with `json`) it prints nothing until the end.
 */
export async function trackTeam(
  client: Client,
  runId: string,
  opts: { intervalMs?: number; json?: boolean } = {},
): Promise<TeamStatus> {
  const tty = Boolean(process.stdout.isTTY) && !opts.json;
  let tick = 0;
  let last: TeamStatus | undefined;
  for (;;) {
    try {
      last = await teamStatus(client, runId);
      const pids = tty ? await agentPids(client, last) : {};
      if (tty) logUpdate(renderTeamStatus(last, { tick: tick++, pids }));
      if (last.state === 'completed' || last.state === 'stopped' || last.state === 'failed') break;
    } catch (err) {
      if (err instanceof TeamError) throw err;
      // No worker answered the query in time: try again.
    }
    await delay(opts.intervalMs ?? 500);
  }
  if (tty) logUpdate.done();
  else if (!opts.json) process.stdout.write(renderTeamStatus(last) + '\n');
  return last;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function agentIcon(a: TeamAgentRow, tick = 0): string {
  switch (a.state) {
    case 'completed':
      return pc.green('✓');
    case 'failed':
      return pc.red('✗');
    case 'stopped':
      return pc.yellow('⊘');
    case 'running':
      return pc.cyan(SPINNER[tick % SPINNER.length] ?? '*');
    default:
      return pc.dim('·');
  }
}

function since(iso: string | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/** The status block of `team status` and the `track` dashboard. */
export function renderTeamStatus(
  s: TeamStatus,
  opts: { tick?: number; pids?: Record<string, number> } = {},
): string {
  const color =
    s.state === 'completed'
      ? pc.green
      : s.state === 'failed'
        ? pc.red
        : s.state === 'running'
          ? pc.cyan
          : pc.yellow;
  const lines = [
    `${pc.bold(`Team "${s.goal}"`)} · run ${pc.bold(s.runId)} · ${color(s.state)} · ${s.totals.agents} agents ` +
      `(${s.totals.active} active) · ${formatUsd(s.totals.costUsd)}`,
  ];
  const idW = Math.max(8, ...s.agents.map((a) => a.id.length));
  const nameW = Math.max(6, ...s.agents.map((a) => a.name.length));
  for (const a of s.agents) {
    const pid = opts.pids?.[a.id];
    const where = a.archivedTo ? pc.dim(` → ${path.basename(a.archivedTo)}/`) : '';
    const err = a.error ? pc.red(` ${a.error.slice(0, 120)}`) : '';
    const note = a.note ? ` ${pc.italic(`"${a.note.slice(0, 80)}"`)}` : '';
    lines.push(
      `  ${agentIcon(a, opts.tick)} ${a.id.padEnd(idW)} ${a.name.padEnd(nameW)} ${a.state.padEnd(9)} ` +
        `tasks ${a.tasks.completed}/${a.tasks.total}  ${formatUsd(a.costUsd).padStart(8)}  ` +
        `${pc.dim(`by ${a.requestedBy}`)}${pid ? pc.dim(` pid ${pid}`) : ''}${note}${where}${err}`,
    );
  }
  if (s.refusals.length) {
    lines.push(pc.bold('  Refused requests'));
    for (const r of s.refusals) {
      lines.push(
        `  ${pc.red('✗')} ${r.request.requestedBy} → ${r.request.role} "${r.request.name}" (${r.source}): ${r.reason}`,
      );
    }
  }
  if (s.stopReason) lines.push(`  ${pc.yellow('⊘')} stop: ${s.stopReason}`);
  if (s.pausedReason) lines.push(`  ${pc.yellow('!')} paused: ${s.pausedReason}`);
  lines.push(
    pc.dim(
      `  started ${since(s.startedAt)}${s.completedAt ? ` · ended ${since(s.completedAt)}` : ''} · workspace ${s.workspace}`,
    ),
  );
  return lines.join('\n');
}
