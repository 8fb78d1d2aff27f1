/**
 * Agent presets: reusable agent definitions (role, prompt, model, tools, subagents), one YAML file each in
 * config/agents/. A file's name is its id (`reviewer.yaml` → `reviewer`). The system prompt is inline
 * (`system_prompt`) or in a file next to the YAML (`system_prompt_file`, relative to the YAML).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { CliSubagent } from '../src/claude/args';
import { BackendSchema, PermissionModeSchema } from '../src/shared/spec';
import { ConfigError } from './errors';
import { parseConfig, readYamlFile } from './yaml-file';
import { isKnownModel, PRICE_TABLE } from './pricing';

// import.meta.dirname needs Node 20.11; the project supports 20.3.
const PRESETS_DIR = path.join(fileURLToPath(new URL('.', import.meta.url)), 'agents');

const IdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'must be letters, digits, - or _');

/** All model names a preset may use: the aliases and the priced model ids. */
export function knownModels(): string[] {
  return [...Object.keys(PRICE_TABLE.aliases), ...Object.keys(PRICE_TABLE.models)];
}

const ModelSchema = z
  .string()
  .min(1)
  .refine((m) => isKnownModel(m), {
    error: (issue) => `unknown model "${String(issue.input)}" (known: ${knownModels().join(', ')})`,
  });

const ToolListSchema = z.array(z.string().min(1, 'must not be empty'));

/** A subagent the main agent can hand work to (Task tool); passed to the CLI as `--agents <json>`. */
export const SubagentSchema = z.strictObject({
  id: IdSchema,
  description: z.string().min(1),
  prompt: z.string().min(1),
  tools: ToolListSchema.optional(),
  model: ModelSchema.optional(),
});
export type Subagent = z.infer<typeof SubagentSchema>;

/** The shape of one file in config/agents/. Strict: a misspelt key is an error, not silently ignored. */
export const AgentPresetFileSchema = z
  .strictObject({
    /** Defaults to the file name; when given it must equal it. */
    id: IdSchema.optional(),
    role: z.string().min(1),
    /** One line for humans (`orchestrator agents`). */
    description: z.string().min(1),
    system_prompt: z.string().min(1).optional(),
    /** Path of a text file holding the system prompt, relative to the YAML file. */
    system_prompt_file: z.string().min(1).optional(),
    backend: BackendSchema.default('cli'),
    model: ModelSchema.optional(),
    max_turns: z.number().int().positive().optional(),
    allowed_tools: ToolListSchema.optional(),
    disallowed_tools: ToolListSchema.optional(),
    permission_mode: PermissionModeSchema.optional(),
    subagents: z.array(SubagentSchema).default([]),
    /** api agents of this role: the registry's tools they are offered (`orchestrator tools list`). */
    tools: ToolListSchema.optional(),
    /** Skills (config/skills/) every agent of this role follows. */
    skills: z.array(IdSchema).optional(),
  })
  .superRefine((a, ctx) => {
    if ((a.system_prompt === undefined) === (a.system_prompt_file === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['system_prompt'],
        message: 'give exactly one of system_prompt and system_prompt_file',
      });
    }
    const seen = new Set<string>();
    a.subagents.forEach((s, i) => {
      if (seen.has(s.id))
        ctx.addIssue({
          code: 'custom',
          path: ['subagents', i, 'id'],
          message: `duplicate subagent id "${s.id}"`,
        });
      seen.add(s.id);
    });
  });

/** A loaded preset: the system prompt resolved to text, the id settled, and where it came from. */
export interface AgentPreset {
  id: string;
  role: string;
  description: string;
  system_prompt: string;
  backend: z.infer<typeof BackendSchema>;
  model?: string;
  max_turns?: number;
  allowed_tools?: string[];
  disallowed_tools?: string[];
  permission_mode?: z.infer<typeof PermissionModeSchema>;
  subagents: Subagent[];
  /** The registry's tools api agents of this role are offered. */
  tools?: string[];
  /** Skill ids every agent of this role follows. */
  skills?: string[];
  /** Absolute path of the YAML file. */
  source: string;
}

/** Reads and validates one preset file; throws ConfigError `file: field: problem`. */
export function loadAgentFile(file: string): AgentPreset {
  const { full, data } = readYamlFile(file);
  const a = parseConfig(AgentPresetFileSchema, data, full);
  const stem = path.basename(full).replace(/\.ya?ml$/, '');
  if (a.id !== undefined && a.id !== stem)
    throw new ConfigError(`${full}: id: must equal the file name ("${stem}")`);
  const id = IdSchema.safeParse(stem).success ? stem : undefined;
  if (id === undefined) throw new ConfigError(`${full}: id: the file name must be letters, digits, - or _`);

  let systemPrompt = a.system_prompt;
  if (systemPrompt === undefined && a.system_prompt_file !== undefined) {
    const promptPath = path.resolve(path.dirname(full), a.system_prompt_file);
    try {
      systemPrompt = fs.readFileSync(promptPath, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `${full}: system_prompt_file: cannot read ${promptPath} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
    if (!systemPrompt.trim()) throw new ConfigError(`${full}: system_prompt_file: ${promptPath} is empty`);
  }

  const { system_prompt_file: _file, system_prompt: _inline, id: _id, ...rest } = a;
  return { ...rest, id, system_prompt: (systemPrompt ?? '').trim(), source: full };
}

/** Every `*.yaml` preset in `dir` (default config/agents/), sorted by id. */
export function listAgentPresets(dir: string = PRESETS_DIR): AgentPreset[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => loadAgentFile(path.join(dir, f)))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** A preset by id; throws ConfigError naming the known presets when there is none. */
export function getAgentPreset(id: string, dir: string = PRESETS_DIR): AgentPreset {
  for (const ext of ['.yaml', '.yml']) {
    const file = path.join(dir, `${id}${ext}`);
    if (IdSchema.safeParse(id).success && fs.existsSync(file)) return loadAgentFile(file);
  }
  const known = listAgentPresets(dir).map((p) => p.id);
  throw new ConfigError(`unknown agent preset "${id}" (known: ${known.join(', ')})`);
}

/** A preset's subagents in the shape of the CLI's `--agents <json>` (keyed by id). */
export function subagentsForCli(subagents: readonly Subagent[]): Record<string, CliSubagent> {
  return Object.fromEntries(
    subagents.map(({ id, description, prompt, tools, model }) => [
      id,
      { description, prompt, ...(tools ? { tools } : {}), ...(model ? { model } : {}) },
    ]),
  );
}
