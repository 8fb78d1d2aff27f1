/**
 * The skills registry: reusable methodologies, one YAML file each, shipped in config/skills/ and added
 * (or replaced, by id) by an intake's `skills/` folder. A skill applies to an agent when its role lists it
 * or its triggers match the agent's task or the project's requirements (src/shared/skills).
 *
 * ```yaml
 * id: forecasting
 * version: "1.0"
 * description: Demand and time-series forecasting with an honest backtest.
 * triggers: [forecast, predict, time series]
 * methodology:
 *   - Profile the history: range, gaps, seasonality.
 *   - step: Fit a naive baseline first.
 * tools: [read_file, sql]
 * inputs: [historical data]
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError } from './errors';
import { parseConfig, readYamlFile } from './yaml-file';

// import.meta.dirname needs Node 20.11; the project supports 20.3.
const SKILLS_DIR = path.join(fileURLToPath(new URL('.', import.meta.url)), 'skills');

const IdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'must be letters, digits, - or _');
const Text = z.string().trim().min(1, 'must not be empty');

/** One methodology step: a line of text, or `{ step, details }`. */
const StepSchema = z.union([
  Text,
  z
    .strictObject({ step: Text, details: Text.optional() })
    .transform((s) => (s.details ? `${s.step}: ${s.details}` : s.step)),
]);

/** The shape of one skill file. Strict: a misspelt key is an error naming it. */
export const SkillFileSchema = z.strictObject({
  /** Defaults to the file name; when given it must equal it. */
  id: IdSchema.optional(),
  /** YAML reads `1.0` as a number: either spelling is accepted and kept as text. */
  version: z.preprocess((v) => (typeof v === 'number' ? String(v) : v), Text),
  /** One line for humans (`orchestrator skills list`). */
  description: Text.optional(),
  /** Words or phrases that apply the skill when an agent's task or the requirements mention them. */
  triggers: z.array(Text).min(1, 'must list at least one trigger'),
  /** The steps the agent is told to follow, in order. */
  methodology: z.array(StepSchema).min(1, 'must list at least one step'),
  /** Tools the methodology relies on (api tool names); informational. */
  tools: z.array(Text).optional(),
  /** What the skill expects to be given, e.g. `historical data`; informational. */
  inputs: z.array(Text).optional(),
});

/** A loaded skill: the id settled and the file it came from. */
export interface Skill {
  id: string;
  version: string;
  description?: string;
  triggers: string[];
  methodology: string[];
  tools?: string[];
  inputs?: string[];
  /** Absolute path of the YAML file. */
  source: string;
}

/** Reads and validates one skill file; throws ConfigError `<file>: <field>: <problem>`. */
export function loadSkillFile(file: string): Skill {
  const { full, data } = readYamlFile(file);
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new ConfigError(`${full}: must be a mapping with id, version, triggers and methodology`);
  const skill = parseConfig(SkillFileSchema, data, full);
  const stem = path.basename(full).replace(/\.ya?ml$/, '');
  if (!IdSchema.safeParse(stem).success)
    throw new ConfigError(`${full}: id: the file name must be letters, digits, - or _`);
  if (skill.id !== undefined && skill.id !== stem)
    throw new ConfigError(`${full}: id: must equal the file name ("${stem}")`);
  const { id: _id, ...rest } = skill;
  return { ...rest, id: stem, source: full };
}

/** Every skill in `dir` (`*.yaml`/`*.yml`), sorted by id; a missing folder has none. */
export function loadSkillDir(dir: string): Skill[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => loadSkillFile(path.join(dir, f)))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * The registry: the shipped skills (config/skills/), then those of an intake's `skills/` folder, which
 * replace shipped ones of the same id. A broken file anywhere throws, naming the file and field.
 */
export function loadSkills(opts: { intakeDir?: string; dir?: string } = {}): Skill[] {
  const byId = new Map<string, Skill>();
  for (const s of loadSkillDir(opts.dir ?? SKILLS_DIR)) byId.set(s.id, s);
  if (opts.intakeDir) for (const s of loadSkillDir(path.join(opts.intakeDir, 'skills'))) byId.set(s.id, s);
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** A skill by id; throws ConfigError naming the known ones when there is none. */
export function getSkill(id: string, skills: readonly Skill[]): Skill {
  const s = skills.find((k) => k.id === id);
  if (!s) throw new ConfigError(`unknown skill "${id}" (known: ${skills.map((k) => k.id).join(', ')})`);
  return s;
}
