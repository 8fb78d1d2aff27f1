/**
 * What one `claude` run is started as: its command line, its environment, the sandbox around it and the
 * watchdog outside that, and (for a team agent) the socket its team tools and commands reach.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { buildClaudeArgs, type SessionMode } from '../../src/claude/args';
import type { Logger } from '../../src/logger';
import type { MeterHandle } from '../../src/meter/gateway';
import { AGENT_KEY_ENV, capabilityEnvSync } from '../identity';
import { defaultSandbox, modelCredentialEnv, type WrappedCommand } from '../sandbox';
import { recordSandbox } from '../sandbox/record';
import { createAgentGateway, newTurnKey } from '../team-tools/agent-gateway';
import { TEAM_MCP_SERVER, teamToolsAllowed } from '../team-tools/definitions';
import { createTeamToolHandler } from '../team-tools/handler';
import {
  serveTeamTools,
  TEAM_AGENT_ENV,
  TEAM_KEY_FILE_ENV,
  TEAM_MCP_SCRIPT,
  TEAM_SOCKET_ENV,
  type TeamToolSocket,
} from '../team-tools/socket';
import { Lease, leaseFile, watchedCommand } from '../watchdog';
import type { ParsedClaudeTurnInput } from './contract';
import type { CliActivityDeps } from './deps';
import { SESSION_MARKER_ENV } from './process';

/** A run ready to start: the watchdog's command line, and what the caller releases when the run ends. */
export interface TurnCommand {
  /** The watchdog's program and arguments; it runs the sandboxed `claude`. */
  file: string;
  args: string[];
  /** The sandboxed command's working directory and environment. */
  cwd: WrappedCommand['cwd'];
  env: WrappedCommand['env'];
  /** Whether bwrap confines the run (an exec failure is then bwrap's exit 1). */
  sandboxed: boolean;
  /** The attempt's lease, renewed with each heartbeat and released when the run ends. */
  lease: Lease;
  /** A team agent's socket (its MCP tools and `orchestrator team …` commands); closed when the run ends. */
  tools?: TeamToolSocket;
}

/** What the activity itself sets for `claude` (the allow-list adds PATH, locale and HOME). */
export function fixedEnv(
  deps: Pick<CliActivityDeps, 'anthropic' | 'env'>,
  input: ParsedClaudeTurnInput,
  meter: Pick<MeterHandle, 'baseURL' | 'clientKey'> | undefined,
): Record<string, string | undefined> {
  const baseURL = meter?.baseURL;
  return {
    // The model endpoint and key reach `claude` and nothing else: the one place they enter a child's
    // env. With a gateway, the agent reaches the API only through its meter, and when the gateway holds
    // the key the agent gets only its stand-in.
    ...modelCredentialEnv({
      apiKey: meter?.clientKey ?? deps.anthropic.apiKey,
      baseURL: baseURL ?? deps.anthropic.baseURL,
    }),
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    // Temporal owns retries (with backoff and visibility). One CLI-internal retry stays, because only the
    // CLI sees a 429's retry-after header (its result reports just the status): that retry honours it,
    // and anything still failing surfaces here for Temporal to retry.
    CLAUDE_CODE_MAX_RETRIES: '1',
    // Team tools are offered up front: behind tool search the model would need a lookup turn to find them.
    ...(input.team ? { ENABLE_TOOL_SEARCH: 'false' } : {}),
    ...deps.env,
    ...(baseURL ? { ANTHROPIC_BASE_URL: baseURL } : {}),
    // The agent's own secret, from its 0600 file: never part of the activity's input or history.
    ...capabilityEnvSync(input.capabilityFile),
    // The session marker is in the sandbox's environment too: bwrap clears what the watchdog set.
    [SESSION_MARKER_ENV]: input.sessionId,
  };
}

/** HOME of `claude` and the parts of it that stay writable in the sandbox. */
export function claudeHome(deps: Pick<CliActivityDeps, 'agentHome' | 'env'>): {
  home: string | undefined;
  writable: string[];
} {
  const agentHome = deps.agentHome ?? deps.env?.HOME;
  if (agentHome) return { home: agentHome, writable: [agentHome] };
  const home = process.env.HOME;
  if (!home) return { home: undefined, writable: [] };
  fs.mkdirSync(path.join(home, '.claude'), { recursive: true });
  // A bind needs an existing file; Claude Code reads an empty object as "no settings yet".
  const config = path.join(home, '.claude.json');
  if (!fs.existsSync(config)) fs.writeFileSync(config, '{}\n', { mode: 0o600 });
  return { home, writable: [path.join(home, '.claude'), config] };
}

/**
 * Builds one run's command. A team agent's socket is opened here: if building fails after that, it is
 * closed before the error goes on.
 */
export async function prepareTurnCommand(
  deps: CliActivityDeps,
  run: {
    input: ParsedClaudeTurnInput;
    mode: SessionMode;
    /** The run's `agents/` folder in its outputs (the sandbox state is recorded beside it). */
    dir: string;
    /** Read only for a team agent (a test's activity environment may have no client). */
    client: () => Client;
    log: Logger;
    meter: MeterHandle | undefined;
  },
): Promise<TurnCommand> {
  const { input, mode, log } = run;
  const team = input.team;
  let tools: TeamToolSocket | undefined;
  let turnKey: string | undefined;
  if (team) {
    const key = capabilityEnvSync(input.capabilityFile)[AGENT_KEY_ENV];
    // A team without capabilities: a key for this turn alone, so the endpoint takes no request without one.
    if (!key) turnKey = newTurnKey();
    const identity = { runId: team.runId, agentId: team.agentId, key, turnKey };
    // The MCP server's tools and the agent's own `orchestrator team …` commands, on one socket: the
    // agent reaches its team through this turn, never Temporal itself (src/agent-gateway).
    tools = await serveTeamTools(
      { handler: createTeamToolHandler({ client: run.client(), identity, logger: log }), identity },
      createAgentGateway({ client: run.client(), identity, logger: log }),
    );
  }
  try {
    const mcpConfig = tools
      ? JSON.stringify({
          mcpServers: {
            [TEAM_MCP_SERVER]: {
              command: process.execPath,
              args: [TEAM_MCP_SCRIPT],
              // The key's file, not the key: the config is on claude's command line, which others can read.
              env: {
                [TEAM_SOCKET_ENV]: tools.path,
                ...(tools.keyFile ? { [TEAM_KEY_FILE_ENV]: tools.keyFile } : {}),
                ...(team ? { [TEAM_AGENT_ENV]: team.agentId } : {}),
              },
            },
          },
        })
      : undefined;
    const settingSources = deps.settingSources === undefined ? '' : deps.settingSources;
    const args = buildClaudeArgs({
      sessionId: input.sessionId,
      mode,
      model: input.model,
      maxTurns: input.maxTurns,
      maxBudgetUsd: input.maxBudgetUsd,
      appendSystemPrompt: input.appendSystemPrompt,
      allowedTools: team ? [...(input.allowedTools ?? []), ...teamToolsAllowed()] : input.allowedTools,
      disallowedTools: input.disallowedTools,
      permissionMode: input.permissionMode,
      agents: input.agents,
      mcpConfig,
      liveInput: Boolean(team),
      ...(settingSources === null ? {} : { settingSources }),
    });
    log.info(
      { mode, claudePath: deps.claudePath, args: args.filter((a) => a !== input.appendSystemPrompt) },
      'claude run starting',
    );

    // The whole CLI runs in the sandbox, so its Bash, Read and Write tools see only the workspace (and
    // its own HOME); it keeps the network, as its model calls go to the configured endpoint. The
    // watchdog stays outside: it must see its lease file.
    const { home, writable } = claudeHome(deps);
    const sandbox = deps.sandbox ?? defaultSandbox();
    recordSandbox(path.dirname(run.dir), await sandbox.state());
    const cmd = await sandbox.wrap([deps.claudePath, ...args], {
      workspace: input.cwd,
      network: true,
      fixed: {
        ...fixedEnv(deps, input, run.meter),
        ...(turnKey ? { [AGENT_KEY_ENV]: turnKey } : {}),
        ...(tools ? { [TEAM_SOCKET_ENV]: tools.path } : {}),
      },
      extra: input.extraEnv,
      home,
      writable,
      // The team MCP server (started by `claude` inside the sandbox) reaches its socket read-only.
      ...(tools ? { readable: [path.dirname(tools.path)] } : {}),
    });
    const lease = new Lease(leaseFile());
    const [file, watchedArgs] = watchedCommand([cmd.file, ...cmd.args], {
      leaseFile: lease.file,
      mark: input.sessionId,
      markEnv: SESSION_MARKER_ENV,
    });
    return {
      file,
      args: watchedArgs,
      cwd: cmd.cwd,
      env: cmd.env,
      sandboxed: cmd.sandboxed,
      lease,
      ...(tools && { tools }),
    };
  } catch (err) {
    await tools?.close();
    throw err;
  }
}
