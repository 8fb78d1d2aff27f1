/**
 * Skills, as far as workflows and pure decisions need them: the shape of a skill applied to an agent,
 * trigger matching, and how applied methodology reads in an agent's prompt. Deterministic (zod only):
 * loading skill files is config/skills.ts's job.
 */
import { z } from 'zod';

/** A skill applied to one agent: what its prompt gets, and why it was applied (for the audit). */
export const AppliedSkillSchema = z.object({
  id: z.string().min(1),
  version: z.string().min(1),
  /** The methodology, in order. */
  steps: z.array(z.string().min(1)).min(1),
  /** `role` (its agent definition lists it), `agent` (the intake lists it) or `trigger "<t>" in task|requirements`. */
  because: z.string().min(1),
});
export type AppliedSkill = z.infer<typeof AppliedSkillSchema>;

/** What matching needs of a skill. */
export interface SkillTriggers {
  id: string;
  triggers: readonly string[];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The trigger that matches `text`, if any. A trigger matches at the start of a word, case-insensitively,
 * and may run on into a longer word ("forecast" matches "forecasting", "predict" matches
 * "predictive"); the words of a multi-word trigger may be separated by spaces, `-` or `_`
 * ("time series" matches "time-series").
 */
export function matchingTrigger(triggers: readonly string[], text: string): string | undefined {
  for (const t of triggers) {
    const words = t
      .trim()
      .split(/[\s_-]+/)
      .filter(Boolean);
    if (words.length === 0) continue;
    const re = new RegExp(`(?:^|[^\\p{L}\\p{N}])${words.map(escapeRegex).join('[\\s_-]+')}`, 'iu');
    if (re.test(text)) return t;
  }
  return undefined;
}

/** The skills (in the order given) whose triggers match `text`, with the trigger that matched. */
export function matchSkills<S extends SkillTriggers>(
  skills: readonly S[],
  text: string,
): { skill: S; trigger: string }[] {
  return skills.flatMap((skill) => {
    const trigger = matchingTrigger(skill.triggers, text);
    return trigger === undefined ? [] : [{ skill, trigger }];
  });
}

/**
 * The skills an agent gets: those its role lists, those the intake lists for it, then those whose
 * triggers match its task, then those matching the project's requirements; each once, in that order.
 * Unknown listed ids are returned in `unknown` (the caller says where they were listed).
 */
export function selectSkills<S extends SkillTriggers & { version: string; methodology: readonly string[] }>(
  registry: readonly S[],
  listed: { role?: readonly string[]; agent?: readonly string[] },
  task: string,
  requirements: readonly string[],
): { applied: AppliedSkill[]; unknown: { from: 'role' | 'agent'; id: string }[] } {
  const byId = new Map(registry.map((s) => [s.id, s]));
  const applied: AppliedSkill[] = [];
  const unknown: { from: 'role' | 'agent'; id: string }[] = [];
  const add = (s: S, because: string) => {
    if (applied.some((a) => a.id === s.id)) return;
    applied.push({ id: s.id, version: s.version, steps: [...s.methodology], because });
  };
  for (const from of ['role', 'agent'] as const) {
    for (const id of listed[from] ?? []) {
      const s = byId.get(id);
      if (s) add(s, from);
      else unknown.push({ from, id });
    }
  }
  for (const { skill, trigger } of matchSkills(registry, task)) add(skill, `trigger "${trigger}" in task`);
  const reqs = requirements.join('\n');
  for (const { skill, trigger } of matchSkills(registry, reqs))
    add(skill, `trigger "${trigger}" in requirements`);
  return { applied, unknown };
}

/** `forecasting@1.0`: how audit entries and status rows name an applied skill. */
export function skillRef(s: Pick<AppliedSkill, 'id' | 'version'>): string {
  return `${s.id}@${s.version}`;
}

/** The prompt section for applied skills: each skill's methodology as numbered steps. Empty for none. */
export function methodologySection(skills: readonly AppliedSkill[]): string {
  return skills
    .map(
      (s) =>
        `Methodology: skill ${s.id} (version ${s.version}). Follow these steps in order:\n` +
        s.steps.map((step, i) => `${i + 1}. ${step}`).join('\n'),
    )
    .join('\n\n');
}
