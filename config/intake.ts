/**
 * The intake file: what a user writes to start a project run. {@link parseIntake} validates it and
 * expands phase presets into the resolved {@link ProjectSpec} that the workflow receives.
 */
import fs from 'node:fs';
import { z } from 'zod';
import {
  BudgetLimitSchema,
  GateSpecSchema,
  PhaseSpecSchema,
  ProjectSpecSchema,
  StrategySchema,
  type PhaseSpec,
  type ProjectSpec,
} from '../src/shared/spec';
import { ConfigError } from './errors';
import { loadPolicy, phaseGates, type GateWaiver } from './governance';
import {
  AgentListSchema,
  ArtifactEntrySchema,
  StrategyEntrySchema,
  listPhasePresets,
  presetToPhase,
  unknownPresetMessage,
  type PhasePreset,
} from './phases';
import { configErrorMap, describeIssues, parseYamlText } from './yaml-file';

/**
 * A phase written out in the intake. When `name` is a preset (planning, architecture, data, development,
 * qa, documentation) every field left out is taken from the preset; a field that is set replaces the
 * preset's value as a whole (an `agents` list replaces the preset's agents, it is not merged).
 * A phase with any other name is a custom phase and must list its `agents`.
 *
 * Skipping: a phase is skipped with `skip: true`, which only optional phases accept (`data` is optional;
 * any phase can be declared `optional: true`). `- { name: data, skip: true }` keeps the phase visible in
 * the run as skipped; leaving it out of the list drops it entirely.
 */
export const IntakePhaseObjectSchema = z.strictObject({
  name: PhaseSpecSchema.shape.name,
  optional: z.boolean().optional(),
  skip: z.boolean().optional(),
  /** System prompt for the phase's model agents; replaces the preset's. */
  prompt: z.string().optional(),
  agents: AgentListSchema.optional(),
  strategy: StrategyEntrySchema.optional(),
  /** Globs relative to the workspace: `"plan.md"` (at least one file) or `{ pattern, min_count }`. */
  artifacts: z.array(ArtifactEntrySchema).optional(),
  gates: z.array(GateSpecSchema).optional(),
  budget: BudgetLimitSchema.strict().optional(),
  /** Earlier phases whose summaries this phase's agents receive; default all earlier ones, `[]` none. */
  summaries_from: PhaseSpecSchema.shape.summaries_from,
});
export type IntakePhaseObject = z.output<typeof IntakePhaseObjectSchema>;

/** A phase entry: a preset name (`planning`) or a phase object. */
export const IntakePhaseEntrySchema = z.union([z.string().min(1), IntakePhaseObjectSchema]);

/**
 * The intake file. Every object is strict: an unknown key is an error naming the key, so a typo never
 * silently drops a setting.
 *
 * ```yaml
 * project: { name: "Customer Analytics Platform", client: acme-corp }
 * requirements: ["Build demand forecasting model"]
 * phases: [planning, architecture, { name: data, skip: true }, development, qa, documentation]
 * constraints: { timeline: "2 weeks", budget_tokens: 2000000, budget_usd: 50, on_budget_exceeded: pause }
 * ```
 */
export const IntakeSchema = z.strictObject({
  project: ProjectSpecSchema.shape.project.strict(),
  requirements: z.array(z.string().min(1, 'must not be empty')).default([]),
  phases: z.array(IntakePhaseEntrySchema).min(1, 'must list at least one phase'),
  constraints: ProjectSpecSchema.shape.constraints.unwrap().strict().optional(),
});
export type Intake = z.output<typeof IntakeSchema>;

type Issue = { path: (string | number)[]; message: string };

/** Expands one entry into a phase; records problems in `issues` with their intake path. */
function resolvePhase(
  entry: Intake['phases'][number],
  index: number,
  presets: readonly PhasePreset[],
  issues: Issue[],
): PhaseSpec | undefined {
  if (typeof entry === 'string') {
    const preset = presets.find((p) => p.name === entry);
    if (!preset) {
      issues.push({ path: ['phases', index], message: unknownPresetMessage(entry, presets) });
      return undefined;
    }
    return presetToPhase(preset);
  }
  const preset = presets.find((p) => p.name === entry.name);
  const agents = entry.agents ?? preset?.agents;
  if (!agents) {
    issues.push({
      path: ['phases', index, 'agents'],
      message: `is required: "${entry.name}" is not a phase preset (presets: ${presets.map((p) => p.name).join(', ')})`,
    });
    return undefined;
  }
  const phase: PhaseSpec = {
    name: entry.name,
    optional: entry.optional ?? preset?.optional ?? false,
    skip: entry.skip ?? false,
    prompt: entry.prompt ?? preset?.prompt ?? '',
    agents,
    strategy: entry.strategy ?? preset?.strategy ?? StrategySchema.parse({}),
    artifacts: entry.artifacts ?? preset?.artifacts ?? [],
    gates: entry.gates ?? preset?.gates ?? [],
    budget: entry.budget ?? preset?.budget,
    ...(entry.summaries_from ? { summaries_from: entry.summaries_from } : {}),
  };
  if (phase.skip && !phase.optional) {
    issues.push({
      path: ['phases', index, 'skip'],
      message: `only optional phases can be skipped; "${phase.name}" is not optional (set optional: true to allow it)`,
    });
  }
  return phase;
}

function renderPath(path: (string | number)[]): string {
  return path.reduce<string>(
    (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg),
    '',
  );
}

function fail(source: string, lines: string[]): never {
  throw new ConfigError(lines.map((l) => `${source}: ${l}`).join('\n'));
}

/**
 * Validates intake YAML and resolves it into a {@link ProjectSpec}.
 * Throws {@link ConfigError} whose lines read `<source>: <field.path>: <problem>`, e.g.
 * `intake.yaml: phases[2].artifacts[0]: must be a relative path inside the workspace`, or
 * `intake.yaml:3:7: invalid YAML: …` for a syntax error.
 *
 * Each phase's `gates` come out resolved: the governance policy (universal < default < the client named by
 * `project.client`, see config/governance) for that phase, overridden by the gates the intake lists.
 *
 * @param source the file name used in messages.
 * @param presets phase presets to expand names with; defaults to the built-in ones.
 * @param opts.policyDir governance policy folder (default config/governance).
 */
export function parseIntake(
  yamlText: string,
  source = 'intake',
  presets: readonly PhasePreset[] = listPhasePresets(),
  opts: IntakeOptions = {},
): ProjectSpec {
  const data = parseYamlText(yamlText, source);
  if (data === null || data === undefined)
    fail(source, ['is empty: expected a mapping with project and phases']);
  if (typeof data !== 'object' || Array.isArray(data)) {
    fail(source, ['must be a mapping with project and phases (e.g. `project: { name: demo }`)']);
  }
  const parsed = IntakeSchema.safeParse(data, { error: configErrorMap });
  if (!parsed.success) fail(source, describeIssues(parsed.error));
  const intake = parsed.data;

  const issues: Issue[] = [];
  const firstIndex = new Map<string, number>();
  const phases = intake.phases.map((entry, i) => {
    const name = typeof entry === 'string' ? entry : entry.name;
    const first = firstIndex.get(name);
    if (first !== undefined) {
      const path = typeof entry === 'string' ? ['phases', i] : ['phases', i, 'name'];
      issues.push({ path, message: `duplicate phase "${name}" (also phases[${first}])` });
    } else firstIndex.set(name, i);
    return resolvePhase(entry, i, presets, issues);
  });
  // A hand-off can only come from a phase that runs before this one.
  intake.phases.forEach((entry, i) => {
    if (typeof entry === 'string') return;
    entry.summaries_from?.forEach((from, j) => {
      const at = firstIndex.get(from);
      if (at === undefined || at >= i)
        issues.push({
          path: ['phases', i, 'summaries_from', j],
          message: `"${from}" is not an earlier phase (earlier: ${
            intake.phases
              .slice(0, i)
              .map((e) => (typeof e === 'string' ? e : e.name))
              .join(', ') || 'none'
          })`,
        });
    });
  });
  if (issues.length)
    fail(
      source,
      issues.map((iss) => `${renderPath(iss.path)}: ${iss.message}`),
    );

  const { phases: governed, waived } = resolveGates(
    phases as PhaseSpec[],
    intake.project.client,
    source,
    opts.policyDir,
  );

  // The resolved spec is re-validated with the workflow's own schema: it fills defaults and keeps the
  // contract in one place. Paths still match the intake because phase indices are preserved.
  const spec = ProjectSpecSchema.safeParse({
    project: intake.project,
    requirements: intake.requirements,
    phases: governed,
    constraints: intake.constraints,
    ...(waived.length ? { governance: { waived } } : {}),
  });
  if (!spec.success) fail(source, describeIssues(spec.error));
  return spec.data;
}

export interface IntakeOptions {
  /** Governance policy folder (default config/governance). */
  policyDir?: string;
}

/**
 * Lays the client's governance policy under each phase's own gates. A bad policy file throws the policy's
 * ConfigError (it names the file and the field); a bad intake gate names `<source>: phases[i].gates[j]…`.
 */
function resolveGates(
  phases: PhaseSpec[],
  client: string | undefined,
  source: string,
  policyDir: string | undefined,
): { phases: PhaseSpec[]; waived: GateWaiver[] } {
  let policy: ReturnType<typeof loadPolicy>;
  try {
    policy = loadPolicy({ client, dir: policyDir });
  } catch (err) {
    // Only the client's name is the intake's fault; policy-file problems already name their file.
    if (err instanceof ConfigError && err.message.startsWith('client:')) {
      fail(source, [`project.${err.message}`]);
    }
    throw err;
  }
  const problems: string[] = [];
  const waived: GateWaiver[] = [];
  const out = phases.map((phase, i) => {
    try {
      const r = phaseGates(policy, phase.name, phase.gates, `phases[${i}].gates`);
      waived.push(
        ...r.waived.map((w) =>
          w.by.startsWith('intake') ? { ...w, by: `${source}: ${w.by.slice('intake '.length)}` } : w,
        ),
      );
      return { ...phase, gates: r.gates };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.message.split('; '));
      return phase;
    }
  });
  if (problems.length) fail(source, problems);
  return { phases: out, waived };
}

/** Reads an intake file and resolves it; see {@link parseIntake}. A missing file is a ConfigError. */
export function loadIntake(
  filePath: string,
  presets?: readonly PhasePreset[],
  opts: IntakeOptions = {},
): ProjectSpec {
  let text: string;
  try {
    text = fs.readFileSync(filePath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT' ? `${filePath}: file not found` : `${filePath}: cannot read (${code ?? String(err)})`,
    );
  }
  return parseIntake(text, filePath, presets, opts);
}
