/**
 * The resolved run specification: what a workflow receives after config/ has parsed an intake file and
 * expanded presets. Deterministic code only (zod), so workflows may import it.
 */
import { z } from 'zod';
import { SafeNameSchema } from './ids';
import { DURATION_EXAMPLES, parseDuration } from './duration';
import { AppliedSkillSchema } from './skills';
import { MAX_AGENT_HEARTBEAT_TIMEOUT_S, MIN_AGENT_HEARTBEAT_TIMEOUT_S } from './failures';

export const BackendSchema = z.enum(['script', 'cli', 'api']);
export type Backend = z.infer<typeof BackendSchema>;

/** How an agent's work is routed: `ai` = model backend, `static` = script, `hybrid` = ai then script. */
export const RoutingSchema = z.enum(['ai', 'static', 'hybrid']);

export const PermissionModeSchema = z.enum([
  'acceptEdits',
  'auto',
  'bypassPermissions',
  'default',
  'dontAsk',
  'plan',
]);

/** A relative path or glob that must stay inside the workspace. */
export const WorkspaceGlobSchema = z
  .string()
  .min(1, 'must not be empty')
  .refine(
    (p) => !p.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(p) && !p.split(/[\\/]/).includes('..'),
    'must be a relative path inside the workspace',
  );

/** One entry of `--agents <json>`: a subagent the main agent can delegate to with its Agent/Task tool. */
export const CliSubagentSchema = z.object({
  description: z.string().min(1, 'must not be empty'),
  prompt: z.string().min(1, 'must not be empty'),
  tools: z.array(z.string().min(1)).optional(),
  model: z.string().min(1).optional(),
});
export type CliSubagent = z.infer<typeof CliSubagentSchema>;

/** Subagents by name, as `claude --agents` takes them. */
export const SubagentsSchema = z.record(
  z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'must be letters, digits, - or _'),
  CliSubagentSchema,
);

export const AgentSpecSchema = z
  .object({
    /** Unique within its phase; defaults to the role (with a suffix when repeated). */
    id: SafeNameSchema.optional(),
    role: z.string().min(1),
    backend: BackendSchema.default('script'),
    routing: RoutingSchema.optional(),
    /** script backend: an argv array run in the workspace (no shell unless argv says `sh -c`). */
    command: z.array(z.string()).min(1, 'must have at least the program name').optional(),
    /** The task for a model backend. */
    prompt: z.string().optional(),
    system_prompt: z.string().optional(),
    model: z.string().optional(),
    max_turns: z.number().int().positive().optional(),
    allowed_tools: z.array(z.string()).optional(),
    /** api agents: the registry's tools offered (`orchestrator tools list`), instead of `allowed_tools`. */
    tools: z.array(z.string().min(1)).optional(),
    disallowed_tools: z.array(z.string()).optional(),
    permission_mode: PermissionModeSchema.optional(),
    /** cli backend: subagents by name, handed to `claude --agents` (filled from the role's definition). */
    subagents: SubagentsSchema.optional(),
    /** Wall-clock limit of one attempt; an agent that outlives it is ended and retried as a hang. */
    timeout_s: z.number().positive().optional(),
    /** cli and api agents: seconds without any progress (output from the model) before it counts as hung. */
    hang_after_s: z.number().positive().optional(),
    /** Attempts for the agent's own failures (exit code, hang, model error); worker crashes never count. */
    max_attempts: z.number().int().positive().max(20).optional(),
    env: z.record(z.string(), z.string()).optional(),
    budget_usd: z.number().nonnegative().optional(),
    budget_tokens: z.number().int().nonnegative().optional(),
    /** Skill ids (config/skills/, the intake's skills/) applied to this agent besides its role's. */
    skills: z.array(SafeNameSchema).optional(),
    /**
     * The skills applied, resolved at run start (listed by the role or the intake, or triggered by the
     * task or the requirements): their methodology goes into the agent's prompt as ordered steps.
     */
    applied_skills: z.array(AppliedSkillSchema).optional(),
  })
  .superRefine((a, ctx) => {
    if (a.backend === 'script' && !a.command) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: 'is required for backend "script"' });
    }
  });
export type AgentSpec = z.infer<typeof AgentSpecSchema>;

export const StrategySchema = z.object({
  type: z.enum(['parallel', 'sequential', 'fallback', 'batched']).default('parallel'),
  max_concurrency: z.number().int().positive().optional(),
  pass_output: z.boolean().default(false),
  stop_on_failure: z.boolean().default(true),
  batch_size: z.number().int().positive().optional(),
});
export type Strategy = z.infer<typeof StrategySchema>;

export const ArtifactSpecSchema = z.object({
  pattern: WorkspaceGlobSchema,
  min_count: z.number().int().nonnegative().default(1),
});
export type ArtifactSpec = z.infer<typeof ArtifactSpecSchema>;

/** Gates are carried opaquely here; their schema lives with governance (config/governance). */
export const GateSpecSchema = z.record(z.string(), z.unknown());

export const BudgetLimitSchema = z.object({
  usd: z.number().nonnegative().optional(),
  tokens: z.number().int().nonnegative().optional(),
});
export type BudgetLimit = z.infer<typeof BudgetLimitSchema>;

export const PhaseSpecSchema = z.object({
  name: SafeNameSchema,
  optional: z.boolean().default(false),
  /** When true the phase is skipped (only allowed for optional phases). */
  skip: z.boolean().default(false),
  /** The preset's system prompt, handed to model agents of this phase. */
  prompt: z.string().default(''),
  agents: z.array(AgentSpecSchema).min(1, 'a phase needs at least one agent'),
  strategy: StrategySchema.default({ type: 'parallel', pass_output: false, stop_on_failure: true }),
  artifacts: z.array(ArtifactSpecSchema).default([]),
  gates: z.array(GateSpecSchema).default([]),
  budget: BudgetLimitSchema.optional(),
  /**
   * The earlier phases whose summaries this phase's model agents receive (context hand-off); default
   * every earlier phase, `[]` none. Agents get summaries, never transcripts.
   */
  summaries_from: z.array(SafeNameSchema).optional(),
});
export type PhaseSpec = z.infer<typeof PhaseSpecSchema>;

export const ProjectSpecSchema = z.object({
  project: z.object({ name: z.string().min(1), client: SafeNameSchema.optional() }),
  requirements: z.array(z.string()).default([]),
  phases: z.array(PhaseSpecSchema).min(1, 'must list at least one phase'),
  constraints: z
    .object({
      budget_tokens: z.number().int().nonnegative().optional(),
      budget_usd: z.number().nonnegative().optional(),
      on_budget_exceeded: z.enum(['pause', 'fail']).default('pause'),
      /**
       * The v2 intake's delivery target ("2 weeks", "10 days", "36h"): the run's deadline is its start
       * plus this; `run status` shows it and warns (as does the worker's log) when phases run past it.
       * Nothing is stopped for it.
       */
      timeline: z
        .string()
        .max(200)
        .refine((t) => parseDuration(t) !== undefined, {
          error: (iss) => `must be a duration like ${DURATION_EXAMPLES} (got ${JSON.stringify(iss.input)})`,
        })
        .optional(),
      /**
       * Heartbeat timeout of the run's agent turns, in seconds (default 30, AGENT_TURN_HEARTBEAT_TIMEOUT):
       * a turn whose worker died is retried this long after its last heartbeat. Shorter notices a lost
       * worker sooner, for more heartbeat writes on the server (a turn beats every third of it).
       */
      agent_heartbeat_timeout_s: z
        .number()
        .int()
        .min(MIN_AGENT_HEARTBEAT_TIMEOUT_S)
        .max(MAX_AGENT_HEARTBEAT_TIMEOUT_S)
        .optional(),
    })
    .default({ on_budget_exceeded: 'pause' }),
  /**
   * Governance decisions taken when the intake was resolved: gates (never mandatory ones) that a client
   * policy or the intake switched off. The run records each in its audit trail.
   */
  governance: z
    .object({
      waived: z.array(z.object({ phase: z.string(), gate: z.string(), by: z.string() })).default([]),
    })
    .optional(),
});
export type ProjectSpec = z.infer<typeof ProjectSpecSchema>;

/** Input of `projectWorkflow`. Paths are absolute and resolved by the client, never by the workflow. */
export const ProjectWorkflowInputSchema = z.object({
  runId: SafeNameSchema,
  spec: ProjectSpecSchema,
  workspace: z.string().startsWith('/', 'must be an absolute path'),
  outputsDir: z.string().startsWith('/', 'must be an absolute path'),
  /**
   * When the run is due (ISO time): its start plus `constraints.timeline`, fixed by the client that
   * started it so that every execution and replay agrees.
   */
  deadline: z.string().optional(),
  /** Set when this run was forked from another run's checkpoint. */
  forkedFrom: z
    .object({
      runId: SafeNameSchema,
      checkpoint: z.string(),
      /** The parent's workspace and the checkpoint's commit, materialized into this run's workspace. */
      sourceWorkspace: z.string().startsWith('/'),
      commit: z.string().min(1),
      /** Index of the phase the checkpoint was taken after; the fork continues with the next one
       * (-1: CP0, the workspace before phase 1). */
      phaseIndex: z.number().int().min(-1),
      /** The host the parent's workspace lives on (README "Many hosts"): the fork is placed there. */
      host: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/)
        .optional(),
    })
    .optional(),
});
export type ProjectWorkflowInput = z.infer<typeof ProjectWorkflowInputSchema>;

/**
 * The spec without the values its schema fills in by default (a phase's `optional: false`, empty
 * `prompt`, `artifacts` and `gates`, the default strategy): the same spec once parsed again, in a
 * fraction of the bytes. Runs carry their spec into every continue-as-new; 1,000 phases must fit.
 */
export function compactSpec(spec: ProjectSpec): ProjectSpec {
  const isDefaultStrategy = (s: Strategy) =>
    s.type === 'parallel' &&
    s.pass_output === false &&
    s.stop_on_failure === true &&
    s.max_concurrency === undefined &&
    s.batch_size === undefined;
  const phases = spec.phases.map((p) => {
    const out: Partial<PhaseSpec> = { name: p.name, agents: p.agents };
    if (p.optional) out.optional = true;
    if (p.skip) out.skip = true;
    if (p.prompt) out.prompt = p.prompt;
    if (!isDefaultStrategy(p.strategy)) out.strategy = p.strategy;
    if (p.artifacts.length > 0) out.artifacts = p.artifacts;
    if (p.gates.length > 0) out.gates = p.gates;
    if (p.budget) out.budget = p.budget;
    if (p.summaries_from) out.summaries_from = p.summaries_from;
    return out as PhaseSpec;
  });
  return { ...spec, phases };
}
