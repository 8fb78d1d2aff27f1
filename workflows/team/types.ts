/**
 * The shapes the team workflows share: a team agent's input and result, and the team's record of each
 * agent (its status row plus what only the workflow holds).
 */
import type { ChildWorkflowHandle } from '@temporalio/workflow';
import type { HostPlacement } from '../../activities/host';
import type { CapabilityState } from '../../src/shared/identity';
import type { MeterCharged } from '../../src/shared/meter-charge';
import type { MeterLimitsMessage } from '../../src/shared/messages';
import type { CliSubagent } from '../../src/shared/spec';
import type { TeamAgentOutcome, TeamAgentRow, TeamAgentSettings, TeamBackend } from '../../src/shared/team';

/** Input of one team agent's workflow. */
export interface TeamAgentInput {
  runId: string;
  goal: string;
  workspace: string;
  outputsDir: string;
  backend: TeamBackend;
  agent: { id: string; name: string; role: string; depth: number; requestedBy: string };
  /** What the requester asked for: the first prompt (cli) or the shell script (script). */
  instructions: string;
  title: string;
  persona: string;
  /** Roles this agent may request (already narrowed by the depth limit). */
  canRequest: string[];
  settings: TeamAgentSettings;
  /** From the role's agent definition; they win over `settings.model`/`settings.maxTurns`. */
  model?: string;
  maxTurns?: number;
  /** Subagents of the role, handed to `claude --agents`. */
  subagents?: Record<string, CliSubagent>;
  /** The `claude` session of a cli agent, chosen by the team so that its status shows it from the start. */
  sessionId?: string;
  /**
   * The agent's capability: the file the spawning activity reads its secret from (never the secret), and
   * the anchor of its `agent` chain, which proves `taskDone` requests. Absent for teams started before
   * capabilities existed.
   */
  capability?: { file: string; anchor: string };
  /**
   * Set when the team keeps a budget: every model request of the agent is admitted by the metering
   * gateway under these limits (its role is its phase), and a refusal pauses the agent in its own session
   * until the team sends new limits. Absent for teams started before team budgets.
   */
  meter?: { limits: MeterLimitsMessage };
  /**
   * The team's host (patch `team-host-queue`, ./host): the agent's directory operations and turns go to
   * its queues. Absent for teams started before hosts: the shared queues.
   */
  host?: HostPlacement;
  /**
   * The team moves when its host is lost (patch `team-host-move`): a step the host never took is retried
   * on the host the team names in `teamHostMoved`. Absent before it: such a step fails the agent.
   */
  hostMoves?: boolean;
}

/** What a team agent's workflow returns (src/shared/team TeamAgentOutcome). */
export type TeamAgentResult = TeamAgentOutcome;

/** How an agent ended, as the team learns it: its result, or the failure its child ended with. */
export type AgentEnd = { result: TeamAgentResult } | { err: unknown };

/** The budget side of a metered agent: what was charged from its meter, and whether a budget holds it. */
export interface MeterState {
  charged: MeterCharged;
  /** Meter reads of one agent run one after another, so that charges follow the meter's growth. */
  chain: Promise<void>;
  running: boolean;
  paused: boolean;
}

/** The team's record of one agent. */
export interface AgentRecord extends TeamAgentRow {
  instructions: string;
  handle?: ChildWorkflowHandle<(input: TeamAgentInput) => Promise<TeamAgentResult>>;
  /** Started by an earlier execution of the team: signalled by id, its end learnt from `agentEnded`. */
  inherited?: boolean;
  /** The agent's `team` chain: what its next request must prove. */
  cap?: CapabilityState;
  capability?: TeamAgentInput['capability'];
}
