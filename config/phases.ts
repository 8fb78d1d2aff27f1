/**
 * Phase presets: the default agents, prompt, strategy and artifacts of each well-known phase, kept as YAML
 * files in config/phases/. Also the zod pieces that phase presets and intake phase objects share (string
 * shorthands for strategies and artifacts, agent id defaults), so both files accept the same spellings.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  AgentSpecSchema,
  ArtifactSpecSchema,
  BudgetLimitSchema,
  GateSpecSchema,
  PhaseSpecSchema,
  StrategySchema,
  WorkspaceGlobSchema,
  type AgentSpec,
  type PhaseSpec,
} from '../src/shared/spec';
import { ConfigError } from './errors';
import { parseConfig, readYamlFile } from './yaml-file';

// import.meta.dirname needs Node 20.11; the project supports 20.3.
const PRESETS_DIR = path.join(fileURLToPath(new URL('.', import.meta.url)), 'phases');

/** `"parallel"` or a full strategy object `{ type, max_concurrency, pass_output, stop_on_failure, batch_size }`. */
export const StrategyEntrySchema = z.union([
  z
    .string()
    .pipe(StrategySchema.shape.type.unwrap())
    .transform((type) => StrategySchema.parse({ type })),
  StrategySchema.strict(),
]);

/** `"src/**\/*.ts"` (at least one file) or `{ pattern, min_count }`. */
export const ArtifactEntrySchema = z.union([
  WorkspaceGlobSchema.transform((pattern) => ArtifactSpecSchema.parse({ pattern })),
  ArtifactSpecSchema.strict(),
]);

/** Turns a role into a valid agent id (`QA Engineer` → `qa-engineer`). */
function idFromRole(role: string): string {
  const slug = role
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|-+$/g, '');
  return slug || 'agent';
}

/**
 * Agents of one phase. Ids must be unique within the phase; an agent without an id gets its role as id,
 * then `role-2`, `role-3`, … when the role repeats (or the plain id is taken by an explicit one).
 */
export const AgentListSchema = z
  .array(AgentSpecSchema.strict())
  .min(1, 'a phase needs at least one agent')
  .superRefine((agents, ctx) => {
    const seen = new Map<string, number>();
    agents.forEach((a, i) => {
      if (a.id === undefined) return;
      const first = seen.get(a.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'id'],
          message: `duplicate agent id "${a.id}" (also agents[${first}])`,
        });
      } else seen.set(a.id, i);
    });
  })
  .transform((agents): AgentSpec[] => {
    const taken = new Set(agents.flatMap((a) => (a.id === undefined ? [] : [a.id])));
    return agents.map((a) => {
      if (a.id !== undefined) return a;
      const base = idFromRole(a.role);
      let id = base;
      for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
      taken.add(id);
      return { ...a, id };
    });
  });

/** The shape of one file in config/phases/. Strict: a misspelt key is an error, not silently ignored. */
export const PhasePresetSchema = z.strictObject({
  name: PhaseSpecSchema.shape.name,
  /** Position in listings (and the conventional run order). */
  order: z.number().int().nonnegative(),
  optional: z.boolean().default(false),
  /** One line for humans (`orchestrator phases`). */
  description: z.string().min(1),
  /** The system prompt handed to this phase's model agents: task-focused, no role-play. */
  prompt: z.string().min(1),
  agents: AgentListSchema,
  strategy: StrategyEntrySchema.default(StrategySchema.parse({})),
  artifacts: z.array(ArtifactEntrySchema).default([]),
  gates: z.array(GateSpecSchema).default([]),
  budget: BudgetLimitSchema.strict().optional(),
});
export type PhasePreset = z.output<typeof PhasePresetSchema>;

/** Reads and validates every `*.yaml` preset in `dir`, sorted by `order`. */
export function loadPhasePresets(dir: string = PRESETS_DIR): PhasePreset[] {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  const presets = files.map((file) => {
    const { full, data } = readYamlFile(path.join(dir, file));
    const preset = parseConfig(PhasePresetSchema, data, full);
    if (preset.name !== path.basename(file, '.yaml')) {
      throw new ConfigError(`${full}: name: must equal the file name ("${path.basename(file, '.yaml')}")`);
    }
    return preset;
  });
  return presets.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

let cached: PhasePreset[] | undefined;

/** The built-in presets (config/phases/*.yaml), in run order. Read once per process. */
export function listPhasePresets(): PhasePreset[] {
  cached ??= loadPhasePresets();
  return cached;
}

/** A built-in preset by name; throws ConfigError naming the known presets when there is none. */
export function getPhasePreset(
  name: string,
  presets: readonly PhasePreset[] = listPhasePresets(),
): PhasePreset {
  const preset = presets.find((p) => p.name === name);
  if (!preset) throw new ConfigError(unknownPresetMessage(name, presets));
  return preset;
}

/** `unknown phase preset "x" (known: planning, architecture, …)`. */
export function unknownPresetMessage(name: string, presets: readonly PhasePreset[]): string {
  return `unknown phase preset "${name}" (known: ${presets.map((p) => p.name).join(', ')})`;
}

/** The resolved phase a preset stands for when an intake lists it by name. */
export function presetToPhase(preset: PhasePreset): PhaseSpec {
  return PhaseSpecSchema.parse({
    name: preset.name,
    optional: preset.optional,
    skip: false,
    prompt: preset.prompt,
    agents: preset.agents,
    strategy: preset.strategy,
    artifacts: preset.artifacts,
    gates: preset.gates,
    budget: preset.budget,
  });
}
