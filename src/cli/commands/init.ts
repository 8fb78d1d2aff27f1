/** `orchestrator init --template <name>`: a project folder to start from (intake, agents, governance). */
import fs from 'node:fs';
import path from 'node:path';
import { type Command } from 'commander';
import { listTemplates, templateFiles } from '../../../config/templates';
import { CliError } from '../context';

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('write an intake, agent definitions and governance policies to start a project from')
    .requiredOption('--template <name>', `template to start from (${listTemplates().join(', ')})`)
    .option('--dir <dir>', 'project folder to write into (created if missing)', '.')
    .action((opts: { template: string; dir: string }) => {
      const files = templateFiles(opts.template);
      if (!files)
        throw new CliError(
          `--template: unknown template "${opts.template}" (one of: ${listTemplates().join(', ')})`,
          2,
        );
      const dir = path.resolve(opts.dir);
      // All or nothing: a user's own file is never replaced, and a refusal leaves nothing half written.
      const existing = files.filter((f) => fs.existsSync(path.join(dir, f.rel))).map((f) => f.rel);
      if (existing.length > 0)
        throw new CliError(
          `init: ${dir} already has ${existing.join(', ')}; nothing was written (move them away or choose another --dir)`,
        );
      for (const f of files) {
        const to = path.join(dir, f.rel);
        fs.mkdirSync(path.dirname(to), { recursive: true });
        fs.copyFileSync(f.from, to, fs.constants.COPYFILE_EXCL);
        process.stdout.write(`wrote ${path.relative(process.cwd(), to) || to}\n`);
      }
      const intake = path.relative(process.cwd(), path.join(dir, 'intake.yaml')) || 'intake.yaml';
      process.stdout.write(
        `next: orchestrator run start --intake ${intake} --workspace ${path.join(path.relative(process.cwd(), dir) || '.', 'workspace')} --rehearse\n`,
      );
    });
}
