/**
 * The hierarchy policy of dynamic teams: which role may request which, the maximum team size and request
 * depth, the personas and how team agents run. It lives in config/team/hierarchy.yaml (persona texts in
 * files next to it) and is resolved here into the {@link TeamPolicy} that `teamWorkflow` receives.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { MAX_AGENT_HEARTBEAT_TIMEOUT_S, MIN_AGENT_HEARTBEAT_TIMEOUT_S } from '../src/shared/failures';
import { PermissionModeSchema } from '../src/shared/spec';
import { RoleNameSchema, TeamPolicySchema, type TeamPolicy } from '../src/shared/team';
import { getAgentPreset, loadAgentFile, subagentsForCli, type AgentPreset } from './agents';
import { ConfigError } from './errors';
import { configErrorMap, describeIssues, readYamlFile } from './yaml-file';

/** config/team/hierarchy.yaml. */
export const DEFAULT_HIERARCHY_FILE = path.join(
  fileURLToPath(new URL('.', import.meta.url)),
  'team',
  'hierarchy.yaml',
);

const RoleFileSchema = z
  .strictObject({
    title: z.string().min(1).optional(),
    persona: z.string().min(1).optional(),
    /** Path of the persona text, relative to the YAML file. */
    persona_file: z.string().min(1).optional(),
    can_request: z.array(RoleNameSchema).default([]),
    initial_instructions: z.string().min(1).optional(),
    /**
     * The agent definition (config/agents/<id>.yaml) of this role: its model, max_turns and subagents
     * become the role's. An `agents/` folder next to the policy file overrides the shipped definitions.
     */
    definition: z.string().min(1).optional(),
    model: z.string().min(1).optional(),
    max_turns: z.number().int().positive().optional(),
    /** What each agent of this role may spend; `budget set --agent` changes it at run time. */
    budget_usd: z.number().nonnegative().optional(),
    budget_tokens: z.number().int().nonnegative().optional(),
  })
  .refine((r) => r.persona === undefined || r.persona_file === undefined, {
    message: 'give at most one of persona and persona_file',
    path: ['persona'],
  });

/** The YAML's shape. Strict: a misspelt key is an error, not silently ignored. */
export const HierarchyFileSchema = z.strictObject({
  max_team_size: z.number().int().positive(),
  max_request_depth: z.number().int().nonnegative(),
  /** `continue` (default): the others work on; `stop`: a failed agent stops and fails the team. */
  on_agent_failure: z.enum(['continue', 'stop']).optional(),
  roles: z.record(RoleNameSchema, RoleFileSchema),
  agent: z
    .strictObject({
      model: z.string().min(1).optional(),
      max_turns: z.number().int().positive().optional(),
      max_rounds: z.number().int().positive().optional(),
      permission_mode: PermissionModeSchema.optional(),
      allowed_tools: z.array(z.string().min(1)).optional(),
      disallowed_tools: z.array(z.string().min(1)).optional(),
      max_budget_usd: z.number().positive().optional(),
      completion_grace_s: z.number().nonnegative().optional(),
      script_timeout_s: z.number().positive().optional(),
      heartbeat_timeout_s: z
        .number()
        .int()
        .min(MIN_AGENT_HEARTBEAT_TIMEOUT_S)
        .max(MAX_AGENT_HEARTBEAT_TIMEOUT_S)
        .optional(),
    })
    .default({}),
});
export type HierarchyFile = z.infer<typeof HierarchyFileSchema>;

/** Overrides applied on top of the file (CLI flags, benchmarks, tests). */
export interface HierarchyOverrides {
  maxTeamSize?: number;
  maxRequestDepth?: number;
  onAgentFailure?: TeamPolicy['onAgentFailure'];
  agent?: Partial<TeamPolicy['agent']>;
}

/**
 * Resolves parsed YAML into a policy; persona files are read relative to `baseDir`. Throws ConfigError
 * with `source: path.to.field: problem` lines.
 */
export function parseHierarchyPolicy(
  doc: unknown,
  source: string,
  baseDir: string,
  overrides: HierarchyOverrides = {},
): TeamPolicy {
  const parsed = HierarchyFileSchema.safeParse(doc, { error: configErrorMap });
  if (!parsed.success) throw new ConfigError(lines(source, describeIssues(parsed.error)));
  const f = parsed.data;
  const roles: Record<string, z.input<typeof TeamPolicySchema>['roles'][string]> = {};
  for (const [role, r] of Object.entries(f.roles)) {
    let persona = r.persona ?? '';
    if (r.persona_file !== undefined) {
      const file = path.resolve(baseDir, r.persona_file);
      try {
        persona = fs.readFileSync(file, 'utf8');
      } catch (err) {
        throw new ConfigError(
          `${source}: roles.${role}.persona_file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        );
      }
    }
    const def = r.definition === undefined ? undefined : definitionOf(r.definition, baseDir, source, role);
    const subagents = def?.subagents.length ? subagentsForCli(def.subagents) : undefined;
    roles[role] = {
      title: r.title ?? role.replace(/-/g, ' '),
      persona: persona.trim(),
      canRequest: r.can_request,
      initialInstructions: r.initial_instructions,
      model: r.model ?? def?.model,
      maxTurns: r.max_turns ?? def?.max_turns,
      subagents,
      ...(r.budget_usd !== undefined || r.budget_tokens !== undefined
        ? { budget: { usd: r.budget_usd, tokens: r.budget_tokens } }
        : {}),
    };
  }
  const a = f.agent;
  const agent = Object.fromEntries(
    Object.entries({
      model: a.model,
      maxTurns: a.max_turns,
      maxRounds: a.max_rounds,
      permissionMode: a.permission_mode,
      allowedTools: a.allowed_tools,
      disallowedTools: a.disallowed_tools,
      maxBudgetUsd: a.max_budget_usd,
      completionGraceS: a.completion_grace_s,
      scriptTimeoutS: a.script_timeout_s,
      turnHeartbeatTimeoutS: a.heartbeat_timeout_s,
      ...overrides.agent,
    }).filter(([, v]) => v !== undefined),
  );
  const policy = TeamPolicySchema.safeParse({
    maxTeamSize: overrides.maxTeamSize ?? f.max_team_size,
    maxRequestDepth: overrides.maxRequestDepth ?? f.max_request_depth,
    onAgentFailure: overrides.onAgentFailure ?? f.on_agent_failure,
    roles,
    agent,
  });
  if (!policy.success) throw new ConfigError(lines(source, describeIssues(policy.error).map(toSnake)));
  return policy.data;
}

/** Reads and resolves a hierarchy policy file (default config/team/hierarchy.yaml). */
export function loadHierarchyPolicy(
  file: string = DEFAULT_HIERARCHY_FILE,
  overrides: HierarchyOverrides = {},
): TeamPolicy {
  const { full, data } = readYamlFile(file);
  return parseHierarchyPolicy(data, full, path.dirname(full), overrides);
}

/** A role's agent definition: `<policy dir>/agents/<id>.yaml` if there is one, else the shipped one. */
function definitionOf(id: string, baseDir: string, source: string, role: string): AgentPreset {
  const local = path.join(baseDir, 'agents');
  try {
    for (const ext of ['.yaml', '.yml']) {
      if (fs.existsSync(path.join(local, `${id}${ext}`)))
        return loadAgentFile(path.join(local, `${id}${ext}`));
    }
    return getAgentPreset(id);
  } catch (err) {
    if (err instanceof ConfigError)
      throw new ConfigError(`${source}: roles.${role}.definition: ${err.message}`);
    throw err;
  }
}

function lines(source: string, issues: string[]): string {
  return issues.map((l) => `${source}: ${l}`).join('\n');
}

/** Policy paths are camelCase; the user wrote snake_case YAML, so messages name the YAML keys. */
function toSnake(line: string): string {
  const i = line.indexOf(': ');
  if (i < 0) return line;
  return line.slice(0, i).replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) + line.slice(i);
}
