/**
 * Checks a run's setup before any workflow starts, so a bad setup fails in the user's terminal with a
 * clear message instead of inside an agent minutes later: agent definitions (YAML), models, the `claude`
 * binary and API credentials. It also fills model agents from their role's agent definition.
 */
import fs from 'node:fs';
import path from 'node:path';
import { listAgentPresets, knownModels, subagentsForCli, type AgentPreset } from '../config/agents';
import type { AppConfig } from '../config/env';
import { ConfigError } from '../config/errors';
import { isKnownModel } from '../config/pricing';
import { loadSkills, type Skill } from '../config/skills';
import { selectSkills } from './shared/skills';
import { ensureClaudeAvailable } from '../activities/cli/available';
import { TOOL_NAMES } from '../activities/tools/tools';
import type { AgentSpec, ProjectSpec } from './shared/spec';

export interface PreflightOptions {
  config: AppConfig;
  /** Directory of the intake file; its `agents/` folder overrides the shipped agent definitions. */
  intakeDir?: string;
  /** Model agents will talk to a local rehearsal server: no API key needed. */
  rehearse?: boolean;
  /** The skills registry to apply; default config/skills/ plus the intake folder's `skills/`. */
  skills?: readonly Skill[];
}

/** Validates the setup and returns the spec with model agents completed from their agent definitions. */
export async function preflight(spec: ProjectSpec, opts: PreflightOptions): Promise<ProjectSpec> {
  const presets = new Map<string, AgentPreset>();
  for (const p of listAgentPresets()) presets.set(p.id, p);
  const local = opts.intakeDir ? path.join(opts.intakeDir, 'agents') : undefined;
  // Project definitions override shipped ones; a broken file fails here, naming the file and field.
  if (local && fs.existsSync(local)) for (const p of listAgentPresets(local)) presets.set(p.id, p);

  // A broken skill file fails here too, naming the file and field.
  const skills = opts.skills ?? loadSkills({ intakeDir: opts.intakeDir });

  let needsClaude = false;
  let needsApi = false;
  const phases = spec.phases.map((phase, i) => ({
    ...phase,
    agents: phase.agents.map((agent, j) => {
      if (agent.backend === 'script' || phase.skip) return agent;
      const where = `phases[${i}].agents[${j}]`;
      const preset = presets.get(agent.role);
      const merged: AgentSpec = {
        ...agent,
        system_prompt: agent.system_prompt ?? preset?.system_prompt,
        model: agent.model ?? preset?.model,
        max_turns: agent.max_turns ?? preset?.max_turns,
        allowed_tools: agent.allowed_tools ?? preset?.allowed_tools,
        disallowed_tools: agent.disallowed_tools ?? preset?.disallowed_tools,
        tools: agent.tools ?? preset?.tools,
        permission_mode: agent.permission_mode ?? preset?.permission_mode,
        subagents:
          agent.subagents ?? (preset?.subagents.length ? subagentsForCli(preset.subagents) : undefined),
      };
      if (merged.model !== undefined && !isKnownModel(merged.model)) {
        throw new ConfigError(
          `${where}.model: unknown model "${merged.model}" (known: ${knownModels().join(', ')})`,
        );
      }
      const unknownTool = merged.tools?.findIndex((t) => !(TOOL_NAMES as readonly string[]).includes(t));
      if (unknownTool !== undefined && unknownTool >= 0) {
        throw new ConfigError(
          `${agent.tools ? `${where}.tools` : `${preset?.source ?? agent.role}: tools`}[${unknownTool}]: unknown tool "${merged.tools?.[unknownTool] ?? ''}" (tools: ${TOOL_NAMES.join(', ')})`,
        );
      }
      if (merged.tools === undefined) delete merged.tools;
      const chosen = selectSkills(
        skills,
        { role: preset?.skills, agent: agent.skills },
        agent.prompt ?? '',
        spec.requirements,
      );
      const unknown = chosen.unknown[0];
      if (unknown) {
        const known = skills.map((s) => s.id).join(', ');
        throw new ConfigError(
          unknown.from === 'agent'
            ? `${where}.skills: unknown skill "${unknown.id}" (known: ${known})`
            : `${preset?.source ?? agent.role}: skills: unknown skill "${unknown.id}" (known: ${known})`,
        );
      }
      if (chosen.applied.length > 0) merged.applied_skills = chosen.applied;
      else delete merged.applied_skills;
      if (agent.backend === 'cli') needsClaude = true;
      else needsApi = true;
      return merged;
    }),
  }));

  if (needsClaude) await ensureClaudeAvailable(opts.config.claudePath);
  if (needsApi && !opts.rehearse && !opts.config.anthropic.apiKey && !opts.config.anthropic.baseURL) {
    throw new ConfigError(
      'ANTHROPIC_API_KEY: must be set for agents with backend "api" (or run with --rehearse)',
    );
  }
  return { ...spec, phases };
}
