/**
 * Dynamic teams: the types, signals, updates and queries of `teamWorkflow` and its agents, and the pure
 * rules both sides share (the hierarchy check, tasks.md, the persona text). Defined once, imported by the
 * workflows and by the clients (CLI, benchmarks, other services). Names of messages are public API.
 *
 * Deterministic sandbox code: imports only @temporalio/workflow, zod and src/shared/.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { AuditEntry } from './audit';
import { MAX_AGENT_HEARTBEAT_TIMEOUT_S, MIN_AGENT_HEARTBEAT_TIMEOUT_S } from './failures';
import { OPERATOR } from './identity';
import { SafeNameSchema } from './ids';
import { sha256Hex } from './sha256';
import { zodIssueText } from './zod-issues';
import { BudgetLimitSchema, PermissionModeSchema, SubagentsSchema } from './spec';

/** The roles a team starts with or that the default policy knows. Policies may add more. */
export const TeamRole = {
  manager: 'manager',
  architect: 'architect',
  engineer: 'software-engineer',
  intern: 'intern',
} as const;

export const RoleNameSchema = z
  .string()
  .max(40, 'must be at most 40 characters')
  .regex(/^[a-z][a-z0-9-]*$/, 'must be lower-case letters, digits or -, e.g. software-engineer');

/** A teammate's name: unique within a team; requests are deduplicated by it. */
export const AgentNameSchema = SafeNameSchema.max(40, 'must be at most 40 characters');

/** How every agent of a team runs (the cli backend's knobs; the script backend uses the timeouts). */
export const TeamAgentSettingsSchema = z.object({
  model: z.string().min(1).optional(),
  /** `--max-turns` of each `claude` invocation. */
  maxTurns: z.number().int().positive().optional(),
  /** How many times an agent is prompted (its first prompt, then "continue") before it counts as failed. */
  maxRounds: z.number().int().positive().default(3),
  permissionMode: PermissionModeSchema.default('acceptEdits'),
  allowedTools: z.array(z.string().min(1)).optional(),
  disallowedTools: z.array(z.string().min(1)).optional(),
  /** `--max-budget-usd` of each invocation. */
  maxBudgetUsd: z.number().positive().optional(),
  /** After its tasks are completed an agent's running turn gets this long to end by itself. */
  completionGraceS: z.number().nonnegative().default(15),
  /** A script agent's process is ended after this long. */
  scriptTimeoutS: z.number().positive().default(3600),
  /**
   * Heartbeat timeout of every agent turn, in seconds (default 30, AGENT_TURN_HEARTBEAT_TIMEOUT): a turn
   * whose worker died is retried this long after its last beat; shorter costs more heartbeat writes.
   */
  turnHeartbeatTimeoutS: z
    .number()
    .int()
    .min(MIN_AGENT_HEARTBEAT_TIMEOUT_S)
    .max(MAX_AGENT_HEARTBEAT_TIMEOUT_S)
    .optional(),
});
export type TeamAgentSettings = z.infer<typeof TeamAgentSettingsSchema>;

export const TeamRolePolicySchema = z.object({
  /** Human title used in the persona ("software engineer"). */
  title: z.string().min(1),
  /** The base persona text for this role. */
  persona: z.string(),
  /** Roles an agent of this role may request. */
  canRequest: z.array(RoleNameSchema).default([]),
  /**
   * Instructions of the agents of this role that a team starts with (cli backend); `{goal}` is replaced
   * by the team's goal. Requested agents get their requester's instructions instead.
   */
  initialInstructions: z.string().min(1).optional(),
  /** From the role's agent definition (config/agents/): these win over the team-wide `agent` settings. */
  model: z.string().min(1).optional(),
  maxTurns: z.number().int().positive().optional(),
  /** Subagents of this role's agents, handed to `claude --agents`. */
  subagents: SubagentsSchema.optional(),
  /** What each agent of this role may spend (USD and/or tokens); `budget set --agent` changes it. */
  budget: BudgetLimitSchema.optional(),
});
export type TeamRolePolicy = z.infer<typeof TeamRolePolicySchema>;

/**
 * The resolved hierarchy policy (config/hierarchy.ts loads it from YAML). Workflows receive it in their
 * input and never read config.
 */
export const TeamPolicySchema = z
  .object({
    /** Most agents active (starting or running) at once. */
    maxTeamSize: z.number().int().positive(),
    /** Most hops from an agent the team started with: manager (0) → engineer (1) → intern (2). */
    maxRequestDepth: z.number().int().nonnegative(),
    roles: z.record(RoleNameSchema, TeamRolePolicySchema),
    /**
     * What the team does when an agent fails: `continue` lets the others work on (the team fails only
     * when every agent failed); `stop` stops every other agent and fails the team, naming the agent.
     */
    onAgentFailure: z.enum(['continue', 'stop']).default('continue'),
    agent: TeamAgentSettingsSchema.default({
      maxRounds: 3,
      permissionMode: 'acceptEdits',
      completionGraceS: 15,
      scriptTimeoutS: 3600,
    }),
  })
  .superRefine((p, ctx) => {
    for (const [role, r] of Object.entries(p.roles)) {
      r.canRequest.forEach((target, i) => {
        if (!p.roles[target]) {
          ctx.addIssue({
            code: 'custom',
            path: ['roles', role, 'canRequest', i],
            message: `unknown role "${target}" (roles: ${Object.keys(p.roles).join(', ')})`,
          });
        }
      });
    }
    for (const required of [TeamRole.manager, TeamRole.architect]) {
      if (!p.roles[required]) {
        ctx.addIssue({ code: 'custom', path: ['roles'], message: `must define role "${required}"` });
      }
    }
  });
export type TeamPolicy = z.infer<typeof TeamPolicySchema>;
export type TeamPolicyInput = z.input<typeof TeamPolicySchema>;

export const TeamBackendSchema = z.enum(['cli', 'script']);
export type TeamBackend = z.infer<typeof TeamBackendSchema>;

/** Input of `teamWorkflow`. Paths are absolute and resolved by the client. */
export const TeamWorkflowInputSchema = z.object({
  runId: SafeNameSchema,
  goal: z.string().min(1, 'must not be empty'),
  workspace: z.string().startsWith('/', 'must be an absolute path'),
  outputsDir: z.string().startsWith('/', 'must be an absolute path'),
  engineers: z.number().int().nonnegative().default(0),
  interns: z.number().int().nonnegative().default(0),
  backend: TeamBackendSchema.default('cli'),
  policy: TeamPolicySchema,
  /**
   * Instructions that replace the generated ones of the agents the team starts with (by role). For the
   * script backend, instructions are the agent's shell script.
   */
  instructions: z.record(RoleNameSchema, z.string().min(1)).default({}),
  /** What the whole team may spend (`team start --max-usd/--max-tokens`); `budget set` changes it. */
  budget: BudgetLimitSchema.optional(),
  /**
   * Where the team's execution continues as new (history events, bytes); defaults in
   * src/shared/team-carry. Tests and benchmarks lower them to exercise the boundary.
   */
  continueAsNewAt: z
    .object({ events: z.number().int().positive().optional(), bytes: z.number().int().positive().optional() })
    .optional(),
});
export type TeamWorkflowInput = z.infer<typeof TeamWorkflowInputSchema>;

/** A request for a new teammate, by signal `spawnAgent` or update `requestAgent`. */
export const SpawnRequestSchema = z.object({
  role: RoleNameSchema,
  name: AgentNameSchema,
  instructions: z.string().min(1, 'must not be empty').max(100_000, 'must be at most 100000 characters'),
  /** The requesting agent's id (e.g. `manager-1`): a claim, believed only with `proof`. */
  requestedBy: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  /**
   * The next element of the requester's `team` capability chain (src/shared/identity), which only the
   * requesting agent's process can compute. Required by teams that issue capabilities.
   */
  proof: z.string().max(200).optional(),
});
export type SpawnRequest = z.infer<typeof SpawnRequestSchema>;

/** What `requestAgent` returns once the agent's workflow has started. */
export interface SpawnResult {
  agentId: string;
  name: string;
  role: string;
  workflowId: string;
  dir: string;
  depth: number;
  state: TeamAgentState;
  /** True when a request with this name had been accepted before (a retry): nothing new was started. */
  duplicate: boolean;
}

/** `failed`: every agent failed, or one failed under `onAgentFailure: stop` (the workflow fails too). */
export type TeamState = 'running' | 'stopping' | 'completed' | 'stopped' | 'failed';
export const TeamAgentStateSchema = z.enum(['starting', 'running', 'completed', 'failed', 'stopped']);
export type TeamAgentState = z.infer<typeof TeamAgentStateSchema>;

const CountSchema = z.number().int().nonnegative();
export const TaskCountsSchema = z.object({ completed: CountSchema, total: CountSchema });
export type TaskCounts = z.infer<typeof TaskCountsSchema>;

export interface TeamAgentRow {
  id: string;
  name: string;
  role: string;
  depth: number;
  requestedBy: string;
  workflowId: string;
  /** `<workspace>/.team/<id>` while the agent works. */
  dir: string;
  /** `<workspace>/.team/<id>-completed` (or `-failed`) once archived. */
  archivedTo?: string;
  state: TeamAgentState;
  requestedAt: string;
  startedAt?: string;
  completedAt?: string;
  costUsd: number;
  turns: number;
  tasks: TaskCounts;
  sessionId?: string;
  error?: string;
  /** The failure type (src/shared/failures) of a failed agent: the cause its failed child workflow shows. */
  errorType?: string;
  /** Requests this agent has proven so far: its next proof is element CHAIN_LENGTH - proofsUsed - 1. */
  proofsUsed?: number;
  /** The agent's latest `report_status` text. */
  note?: string;
}

export interface TeamRefusal {
  at: string;
  /** How the request arrived: `signal`, or `update` (reported by the client whose update was refused). */
  source: 'signal' | 'update';
  request: { role: string; name: string; requestedBy: string };
  reason: string;
}

/** The `status` query of a team run. */
export interface TeamStatus {
  runId: string;
  goal: string;
  state: TeamState;
  backend: TeamBackend;
  workspace: string;
  outputsDir: string;
  startedAt: string;
  completedAt?: string;
  stopReason?: string;
  /** Set while a budget holds an agent: the limit, and the command that raises it. */
  pausedReason?: string;
  agents: TeamAgentRow[];
  refusals: TeamRefusal[];
  /** The run's audit entries (also written to `<outputsDir>/<runId>/audit.jsonl`). */
  audit: AuditEntry[];
  totals: { costUsd: number; agents: number; active: number };
  /** How many times the team's workflow has continued as new (absent: never). */
  continuedAsNew?: number;
  /** The host the team's workspace lives on (README "Many hosts"); absent for teams started before hosts. */
  host?: string;
  policy: { maxTeamSize: number; maxRequestDepth: number; canRequest: Record<string, string[]> };
}

/** A client reports that the validator refused its `requestAgent` update, so the refusal is on record. */
export const RefusalReportSchema = z.object({
  request: z.object({ role: z.string(), name: z.string(), requestedBy: z.string() }),
  reason: z.string().min(1),
});
export type RefusalReport = z.infer<typeof RefusalReportSchema>;

const CostSchema = z.number().nonnegative().finite();
/**
 * Progress an agent workflow reports to its team (signal `agentProgress`). Parsed by the team: anyone who
 * can signal may send anything, and a malformed report must neither throw in the handler (a stalled team)
 * nor put a non-number into its totals.
 */
export const AgentProgressSchema = z.object({
  agentId: z.string().min(1).max(200),
  state: TeamAgentStateSchema.optional(),
  startedAt: z.string().max(100).optional(),
  sessionId: z.string().max(200).optional(),
  costUsd: CostSchema.optional(),
  turns: CountSchema.optional(),
  tasks: TaskCountsSchema.optional(),
  /** A `report_status` text. */
  note: z.string().max(2000).optional(),
});
export type AgentProgress = z.infer<typeof AgentProgressSchema>;

// ---- messages between agents ----
/**
 * A message to a running agent, by signal `messageAgent` or update `sendMessage` on the team run. `to` is
 * an agent id (`software-engineer-1`) or name (`api-dev`); `from` is an agent id, or `operator` (the default: a person's command).
 */
export const MessageRequestSchema = z.object({
  to: z.string().min(1, 'must name an agent (id or name)'),
  text: z.string().min(1, 'must not be empty').max(20_000, 'must be at most 20000 characters'),
  from: z.string().min(1).max(200).default(OPERATOR),
  /** From an agent: its next `team` capability proof (see shared/identity), as in {@link SpawnRequest}. */
  proof: z.string().max(200).optional(),
});
export type MessageRequest = z.input<typeof MessageRequestSchema>;

/** A message as the receiving agent's workflow keeps it (its inbox). */
export interface TeamMessage {
  /** Per receiving agent, from 1. */
  seq: number;
  from: string;
  text: string;
  at: string;
}

/** What `sendMessage` returns: the message reached the agent's workflow and goes to its live session. */
export interface MessageResult {
  to: string;
  name: string;
  state: TeamAgentState;
}

/** The user turn a message becomes in the receiving agent's session. */
export function messagePrompt(m: Pick<TeamMessage, 'from' | 'text'>): string {
  return `Message from ${m.from}:\n${m.text}`;
}

/** Decides a message against the team: the agent named, or why it cannot receive one (pure). */
export function checkMessage(
  team: TeamView,
  raw: unknown,
):
  | { ok: true; request: z.infer<typeof MessageRequestSchema>; agentId: string }
  | { ok: false; reason: string } {
  const parsed = MessageRequestSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, reason: `invalid message: ${zodIssueText(parsed.error, 'message')}` };
  }
  const req = parsed.data;
  const target = team.agents.find((a) => a.id === req.to) ?? team.agents.find((a) => a.name === req.to);
  if (!target) {
    const known = team.agents.map((a) => `${a.id} (${a.name})`).join(', ') || 'none';
    return { ok: false, reason: `no agent "${req.to}" in this team; agents: ${known}` };
  }
  if (!isActive(target.state)) {
    return { ok: false, reason: `agent ${target.id} (${target.name}) has ended: ${target.state}` };
  }
  if (req.from !== OPERATOR && !team.agents.some((a) => a.id === req.from)) {
    return { ok: false, reason: `sender "${req.from}" is not an agent of this team` };
  }
  return { ok: true, request: req, agentId: target.id };
}

// ---- team workflow messages ----
/** Ask for a teammate, fire-and-forget; a refusal is recorded in status and the audit trail. */
export const spawnAgentSignal = defineSignal<[SpawnRequest]>('spawnAgent');
/** Ask for a teammate and learn the outcome; the validator refuses a policy-breaking request with the reason. */
export const requestAgentUpdate = defineUpdate<SpawnResult, [SpawnRequest]>('requestAgent');
/** Records a refusal a client received from `requestAgent`'s validator (which leaves no trace itself). */
export const spawnRefusedSignal = defineSignal<[RefusalReport]>('spawnRefused');
/**
 * `stopTeam`'s payload: nothing, or an object with an optional reason. Anything else (a string, a number,
 * unknown fields) is refused, so that a garbled signal never stops a team.
 */
export const StopTeamRequestSchema = z
  .object({ reason: z.string().max(1000).optional() })
  .strict()
  .nullish();
export type StopTeamRequest = z.infer<typeof StopTeamRequestSchema>;
/** Stop the team: every agent's process is ended and the run completes as `stopped`. */
export const stopTeamSignal = defineSignal<[StopTeamRequest]>('stopTeam');
/** An agent workflow refused a request made in its agent's name; the team records the spoof attempt. */
export const SpoofReportSchema = z.object({
  agentId: z.string().min(1).max(200),
  source: z.string().min(1).max(50),
  request: z.record(z.string(), z.unknown()).default({}),
  reason: z.string().min(1).max(2000),
});
export type SpoofReport = z.infer<typeof SpoofReportSchema>;
export const spoofReportSignal = defineSignal<[SpoofReport]>('spoofReport');

/** Sent by agent workflows to their team. */
export const agentProgressSignal = defineSignal<[AgentProgress]>('agentProgress');

/**
 * How one team agent ended: its workflow's result (or, when it failed, its failure's details). Parsed
 * where it arrives by signal (`agentEnded`), for the reasons of {@link AgentProgressSchema}.
 */
export const TeamAgentOutcomeSchema = z.object({
  agentId: z.string().min(1).max(200),
  state: z.enum(['completed', 'failed', 'stopped']),
  costUsd: CostSchema,
  turns: CountSchema,
  tasks: TaskCountsSchema,
  archivedTo: z.string().optional(),
  sessionId: z.string().optional(),
  error: z.string().optional(),
  /** The failure type (src/shared/failures) of a failed agent. */
  errorType: z.string().optional(),
  startedAt: z.string(),
  completedAt: z.string(),
});
export type TeamAgentOutcome = z.infer<typeof TeamAgentOutcomeSchema>;

/**
 * Sent by an agent workflow to its team (the team's latest run) as it ends. A team that has continued
 * as new no longer owns the children its earlier runs started: this is how it learns they ended.
 */
export const agentEndedSignal = defineSignal<[TeamAgentOutcome]>('agentEnded');

/** Where a team's workspace lives (README "Many hosts"): its host, the host's queue, its move time. */
export interface TeamHost {
  hostId: string;
  queue: string;
  moveAfterMs: number;
  /** Whether the host pushes checkpoints to a checkpoint store (absent: claimed before hosts said). */
  store?: boolean;
}
/**
 * {@link TeamHost} as a `teamHostMoved` signal must carry it: anyone who can signal may send anything, and
 * a malformed host would send the agent's next steps nowhere (or throw in the handler and stall it).
 */
export const TeamHostSchema = z.object({
  hostId: z.string().min(1),
  queue: z.string().min(1),
  moveAfterMs: z.number().int().positive(),
  store: z.boolean().optional(),
});
/** A `teamHostLost` signal's payload: the agent that saw it and the host it lost. */
export const TeamHostLostSchema = z.object({ agentId: z.string().min(1), host: z.string().min(1) });
/**
 * Sent by an agent workflow to its team (patch `team-host-move`): a step of the agent sent to host `host`
 * waited past the host's move time, so the host is gone. The team moves (once) and answers every agent
 * with {@link teamHostMovedSignal}.
 */
export const teamHostLostSignal = defineSignal<[{ agentId: string; host: string }]>('teamHostLost');
export const teamStatusQuery = defineQuery<TeamStatus>('status');
/** A message to a running agent, fire-and-forget; a refusal (ended agent, unknown name) is in status and audit. */
export const messageAgentSignal = defineSignal<[MessageRequest]>('messageAgent');
/** A message to a running agent; refused with the agent's state when it has ended. */
export const sendMessageUpdate = defineUpdate<MessageResult, [MessageRequest]>('sendMessage');

// ---- team agent workflow messages ----
export const TaskDoneRequestSchema = z
  .object({
    task: z.string().min(1).max(1000).optional(),
    all: z.boolean().optional(),
    /** The next element of the agent's `agent` capability chain (src/shared/identity). */
    proof: z.string().max(200).optional(),
  })
  .refine((r) => r.all === true || r.task !== undefined, 'give a task id or all');
export type TaskDoneRequest = z.infer<typeof TaskDoneRequestSchema>;

export interface TaskDoneResult {
  agentId: string;
  tasks: TeamTask[];
  remaining: number;
}

export interface TeamAgentStatus {
  agentId: string;
  name: string;
  role: string;
  state: TeamAgentState;
  round: number;
  turns: number;
  costUsd: number;
  tasks: TaskCounts;
  sessionId?: string;
  dir: string;
  /** `taskDone` requests proven so far (see {@link TeamAgentRow.proofsUsed}). */
  proofsUsed?: number;
  /** The latest `report_status` text. */
  note?: string;
}

/** Mark a task of this agent done (the `orchestrator team task done` command). */
export const taskDoneUpdate = defineUpdate<TaskDoneResult, [TaskDoneRequest]>('taskDone');
/** `stopAgent`'s payload (absent or `{}`: stopped without a reason). */
export const StopAgentRequestSchema = z
  .object({ reason: z.string().max(2000).optional() })
  .optional()
  .nullable();
/** End this agent's process; it completes as `stopped`. */
export const stopAgentSignal = defineSignal<[{ reason?: string }]>('stopAgent');
export const teamAgentStatusQuery = defineQuery<TeamAgentStatus>('status');
/** `deliverMessage`'s payload, as the team sends it (a message the team accepted: see {@link MessageRequestSchema}). */
export const DeliveredMessageSchema = z.object({
  from: z.string().min(1).max(200),
  text: z.string().min(1).max(20_000),
});
export type DeliveredMessage = z.infer<typeof DeliveredMessageSchema>;
/** The team hands an accepted message to its agent's workflow, which passes it to the live session. */
export const deliverMessageSignal = defineSignal<[DeliveredMessage]>('deliverMessage');
/**
 * What a team keeps of each message it delivers: a digest of recipient, sender and text. A
 * `deliverMessage` signal carries no proof (anything that reaches the server can send one to any agent,
 * naming any sender), so an agent takes a message into its inbox only once its team says it sent it
 * ({@link messageVouchedQuery}).
 */
export function messageDigest(to: string, from: string, text: string): string {
  return sha256Hex(JSON.stringify([to, from, text]));
}
/** How many digests of messages to one agent a team keeps (the newest); an agent asks at once. */
export const VOUCHED_MESSAGES_KEPT = 200;
export const MessageVouchRequestSchema = z
  .object({ to: z.string().min(1).max(200), digest: z.string().regex(/^[0-9a-f]{64}$/) })
  .strict();
export type MessageVouchRequest = z.infer<typeof MessageVouchRequestSchema>;
/** Query `messageVouched` (team): whether the team delivered a message with this digest to `to`. */
export const messageVouchedQuery = defineQuery<boolean, [MessageVouchRequest]>('messageVouched');
/** The messages an agent has received after `afterSeq` (its activity polls this for its live session). */
export const agentInboxQuery = defineQuery<TeamMessage[], [number]>('inbox');
/** `reportStatus`'s payload: the text, cut to 500 characters where it is kept. */
export const ReportStatusSchema = z.object({ text: z.string().max(100_000) });
/** `report_status`: a short text shown in team status and track. */
export const reportStatusSignal = defineSignal<[{ text: string }]>('reportStatus');
/**
 * The team's workspace is on another host now (patch `team-host-move`): the agent sends its directory
 * operations and turns there from this moment, and retries there the step the lost host never took.
 */
export const teamHostMovedSignal = defineSignal<[TeamHost]>('teamHostMoved');

// ---- ids and paths ----
/** The workflow id of a team agent: stable, so a replay or retry finds the same child. */
export function teamAgentWorkflowId(runId: string, agentId: string): string {
  return `${runId}/${agentId}`;
}

/** The directory of a team's agents inside the workspace. */
export function teamDir(workspace: string): string {
  return `${workspace.replace(/\/+$/, '')}/.team`;
}

export function agentDir(workspace: string, agentId: string): string {
  return `${teamDir(workspace)}/${agentId}`;
}

// ---- the hierarchy check ----
/** What the check needs to know about the team. */
export interface TeamView {
  state: TeamState;
  agents: ReadonlyArray<Pick<TeamAgentRow, 'id' | 'name' | 'role' | 'depth' | 'requestedBy' | 'state'>>;
}

export type SpawnCheck =
  { ok: true; request: SpawnRequest; duplicateOf?: string } | { ok: false; reason: string };

/** "an intern", "a manager". */
function article(role: string): string {
  return `${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}`;
}

export function isActive(state: TeamAgentState): boolean {
  return state === 'starting' || state === 'running';
}

/**
 * Decides a spawn request against the policy. A request whose name was accepted before for the same role
 * and requester is a duplicate (a retry), accepted without starting anything.
 */
export function checkSpawnRequest(policy: TeamPolicy, team: TeamView, raw: unknown): SpawnCheck {
  const parsed = SpawnRequestSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, reason: `invalid request: ${zodIssueText(parsed.error, 'request')}` };
  }
  const req = parsed.data;
  const roles = Object.keys(policy.roles);
  const target = policy.roles[req.role];
  if (!target) return { ok: false, reason: `unknown role "${req.role}" (roles: ${roles.join(', ')})` };

  const same = team.agents.find((a) => a.name === req.name);
  if (same) {
    if (same.role === req.role && same.requestedBy === req.requestedBy) {
      return { ok: true, request: req, duplicateOf: same.id };
    }
    return {
      ok: false,
      reason: `name "${req.name}" is taken by ${same.id} (${same.role}, requested by ${same.requestedBy})`,
    };
  }
  if (team.state !== 'running') return { ok: false, reason: `the team run is ${team.state}` };

  const requester = team.agents.find((a) => a.id === req.requestedBy);
  if (!requester) {
    return { ok: false, reason: `requester "${req.requestedBy}" is not an agent of this team` };
  }
  const allowed = policy.roles[requester.role]?.canRequest ?? [];
  if (!allowed.includes(req.role)) {
    const may = allowed.length ? `may request only ${allowed.join(', ')}` : 'may not request teammates';
    return {
      ok: false,
      reason: `hierarchy policy: ${article(requester.role)} may not request ${article(req.role)} (${requester.role} ${may})`,
    };
  }
  const depth = requester.depth + 1;
  if (depth > policy.maxRequestDepth) {
    return {
      ok: false,
      reason: `hierarchy policy: request depth ${depth} exceeds max_request_depth ${policy.maxRequestDepth}`,
    };
  }
  const active = team.agents.filter((a) => isActive(a.state)).length;
  if (active >= policy.maxTeamSize) {
    return {
      ok: false,
      reason: `hierarchy policy: the team is full (${active} active agents, max_team_size ${policy.maxTeamSize})`,
    };
  }
  return { ok: true, request: req };
}

// ---- tasks.md ----
export type TaskStatus = 'pending' | 'in_progress' | 'completed';

export interface TeamTask {
  id: string;
  status: TaskStatus;
  text: string;
}

const TASK_LINE = /^\s*[-*]\s*\[([^\]]*)\]\s*(?:(t\d+)\s*:\s*)?(.*)$/;

function taskStatus(mark: string): TaskStatus {
  const m = mark.trim().toLowerCase();
  if (m === 'x' || m === 'done' || m === 'completed' || m === 'complete') return 'completed';
  if (m === 'in_progress' || m === 'in-progress' || m === 'in progress' || m === '~') return 'in_progress';
  return 'pending';
}

/**
 * Reads the tasks of a tasks.md: lines `- [<status>] t<n>: <text>`. Tolerant of hand edits: `[x]` and
 * `[done]` mean completed, `[ ]` pending, and a task without an id gets `t<position>`.
 */
export function parseTasks(text: string): TeamTask[] {
  const tasks: TeamTask[] = [];
  for (const line of text.split('\n')) {
    const m = TASK_LINE.exec(line);
    if (!m) continue;
    tasks.push({
      id: m[2] ?? `t${tasks.length + 1}`,
      status: taskStatus(m[1] ?? ''),
      text: (m[3] ?? '').trim(),
    });
  }
  return tasks;
}

export function renderTasks(agent: { id: string; name: string }, tasks: readonly TeamTask[]): string {
  return [
    `# Tasks of ${agent.id} (${agent.name})`,
    '',
    'Statuses: pending, in_progress, completed. Mark a task done with `orchestrator team task done <id>`',
    '(or edit its status here). When every task is completed your work is over.',
    '',
    ...tasks.map((t) => `- [${t.status}] ${t.id}: ${t.text}`),
    '',
  ].join('\n');
}

const BULLET = /^\s*(?:[-*]|\d+[.)])\s+(.+)$/;

/**
 * The initial tasks of an agent, from its instructions: each bullet line is a task; without bullets the
 * first line of prose is the one task. Directive lines (`@…`) are never tasks.
 */
export function tasksFromInstructions(instructions: string): TeamTask[] {
  const lines = instructions.split('\n').map((l) => l.trim());
  const bullets = lines.flatMap((l) => {
    const m = BULLET.exec(l);
    const text = m?.[1]?.trim();
    return text && !text.startsWith('@') && !l.startsWith('@') ? [text] : [];
  });
  const prose = lines.find((l) => l && !l.startsWith('@') && !l.startsWith('#'));
  const texts = bullets.length ? bullets : [prose ?? 'Carry out your instructions'];
  return texts.map((text, i) => ({
    id: `t${i + 1}`,
    status: 'pending' as const,
    text: text.length > 200 ? `${text.slice(0, 197)}...` : text,
  }));
}

export function countTasks(tasks: readonly TeamTask[]): TaskCounts {
  return { completed: tasks.filter((t) => t.status === 'completed').length, total: tasks.length };
}

// ---- persona ----
export interface PersonaInput {
  runId: string;
  goal: string;
  workspace: string;
  agent: { id: string; name: string; role: string; depth: number; requestedBy: string };
  title: string;
  persona: string;
  canRequest: readonly string[];
  sessionId?: string;
  backend: TeamBackend;
  startedAt: string;
}

/**
 * The generated instructions of an agent (instructions.md and `--append-system-prompt`): base persona,
 * session information, a guide to its directory, how to request teammates and how to mark tasks done.
 */
export function renderPersona(p: PersonaInput): string {
  const dir = agentDir(p.workspace, p.agent.id);
  const request = p.canRequest.length
    ? [
        `You may request teammates of these roles: ${p.canRequest.join(', ')}. Write their instructions to a`,
        'markdown file (bullet lines become their tasks), then run:',
        '',
        `    orchestrator team request --role ${p.canRequest[0]} --name <short-name> --instructions-file <file.md>`,
        '',
        'The command prints the new agent id, or why the request was refused. Names are unique in the team;',
        'repeating a request with the same name does not start a second agent.',
      ]
    : ['You may not request teammates.'];
  return [
    `Role: ${p.agent.role}`,
    `You are ${p.agent.name}, the ${p.title} of a team of Claude agents (agent id ${p.agent.id}).`,
    '',
    p.persona.trim(),
    '',
    '## Session',
    `- Team run: ${p.runId}`,
    `- Team goal: ${p.goal}`,
    `- Agent id: ${p.agent.id}; name: ${p.agent.name}; role: ${p.agent.role}`,
    `- Requested by: ${p.agent.requestedBy} (depth ${p.agent.depth})`,
    ...(p.sessionId ? [`- Session id: ${p.sessionId}`] : []),
    `- Started: ${p.startedAt}`,
    `- Workspace (shared with the team): ${p.workspace}`,
    '',
    '## Your directory',
    `${dir}/`,
    '- instructions.md: these instructions.',
    '- tasks.md: your tasks, one per line as `- [<status>] t<n>: <text>` (pending, in_progress, completed).',
    '- session.json: your session information.',
    `When every task is completed your process is ended and the directory is archived as ${p.agent.id}-completed/.`,
    '',
    ...(p.backend === 'cli'
      ? [
          '## Team tools',
          'Your team tools act as you: request_teammate, message_teammate (reaches a running teammate within',
          'seconds), read_messages, list_team, complete_task and report_status. Messages to you arrive as new',
          'user turns starting "Message from <agent id>:". The commands below do the same from a shell.',
          '',
        ]
      : []),
    '## Requesting teammates',
    ...request,
    '',
    '## Marking tasks done',
    'When you finish a task, run `orchestrator team task done <task-id>` (e.g. `t1`), or',
    '`orchestrator team task done --all` when all your work is done.',
    '',
  ].join('\n');
}
