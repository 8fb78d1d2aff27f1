/** `orchestrator skills list|show|match`: the skills registry (config/skills/ and an intake's skills/). */
import path from 'node:path';
import Table from 'cli-table3';
import { type Command } from 'commander';
import { getSkill, loadSkills, type Skill } from '../../../config/skills';
import { matchSkills } from '../../shared/skills';
import { printJson } from '../context';

interface RegistryOpts {
  intake?: string;
  json?: boolean;
}

/** The registry as a run of this intake would see it (shipped skills plus the intake folder's). */
function registry(opts: RegistryOpts): Skill[] {
  return loadSkills(opts.intake ? { intakeDir: path.dirname(path.resolve(opts.intake)) } : {});
}

export function registerSkillsCommands(program: Command): void {
  const skills = program
    .command('skills')
    .description('list, show and match the skills (methodologies) agents follow');
  const withIntake = (c: Command) =>
    c
      .option('--intake <file>', 'include the skills/ folder next to this intake file')
      .option('--json', 'print JSON');

  withIntake(skills.command('list').description('every skill, its version and triggers')).action(
    (opts: RegistryOpts) => {
      const all = registry(opts);
      if (opts.json) return printJson(all);
      const table = new Table({
        head: ['skill', 'version', 'triggers', 'description'],
        wordWrap: true,
        colWidths: [16, 9, 30, 55],
      });
      for (const s of all) table.push([s.id, s.version, s.triggers.join(', '), s.description ?? '']);
      process.stdout.write(table.toString() + '\n');
    },
  );

  withIntake(
    skills.command('show <id>').description("a skill's triggers, methodology, tools and inputs"),
  ).action((id: string, opts: RegistryOpts) => {
    const s = getSkill(id, registry(opts));
    if (opts.json) return printJson(s);
    const lines = [
      `${s.id} ${s.version}${s.description ? `: ${s.description}` : ''}`,
      `triggers: ${s.triggers.join(', ')}`,
      ...(s.tools ? [`tools: ${s.tools.join(', ')}`] : []),
      ...(s.inputs ? [`inputs: ${s.inputs.join(', ')}`] : []),
      'methodology:',
      ...s.methodology.map((step, i) => `  ${i + 1}. ${step}`),
      `file: ${s.source}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });

  withIntake(
    skills
      .command('match <text>')
      .description('the skills whose triggers match this text (a task or a requirement)'),
  ).action((text: string, opts: RegistryOpts) => {
    const matched = matchSkills(registry(opts), text);
    if (opts.json)
      return printJson(
        matched.map(({ skill, trigger }) => ({ id: skill.id, version: skill.version, trigger })),
      );
    if (matched.length === 0) {
      process.stdout.write('no skill matches\n');
      process.exitCode = 1;
      return;
    }
    for (const { skill, trigger } of matched)
      process.stdout.write(`${skill.id} ${skill.version} (trigger "${trigger}")\n`);
  });
}
