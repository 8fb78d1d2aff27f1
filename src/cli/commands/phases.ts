/** `orchestrator phases list|show`: the phase presets an intake can name, and their prompts. */
import Table from 'cli-table3';
import { type Command } from 'commander';
import { getPhasePreset, listPhasePresets } from '../../../config/phases';
import { printJson } from '../context';

export function registerPhaseCommands(program: Command): void {
  const phases = program.command('phases').description('list the phase presets and show their prompts');
  phases
    .command('list')
    .description('the phase presets, in run order')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const presets = listPhasePresets();
      if (opts.json) return printJson(presets);
      const table = new Table({
        head: ['phase', 'optional', 'agents', 'artifacts', 'description'],
        wordWrap: true,
        colWidths: [14, 10, 22, 26, 50],
      });
      for (const p of presets) {
        table.push([
          p.name,
          p.optional ? 'yes' : '',
          p.agents.map((a) => `${a.role} (${a.backend})`).join(', '),
          p.artifacts.map((a) => (typeof a === 'string' ? a : a.pattern)).join(', '),
          p.description,
        ]);
      }
      process.stdout.write(table.toString() + '\n');
    });
  phases
    .command('show <name>')
    .description("a phase preset's system prompt, agents and artifacts")
    .option('--json', 'print JSON')
    .action((name: string, opts: { json?: boolean }) => {
      const p = getPhasePreset(name);
      if (opts.json) return printJson(p);
      process.stdout.write(
        `${p.name}${p.optional ? ' (optional)' : ''}: ${p.description}\n\n${p.prompt.trim()}\n`,
      );
    });
}
