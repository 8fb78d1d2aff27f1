/** `orchestrator completion bash|zsh`: prints a completion script for the whole command tree. */
import { type Command, InvalidArgumentError } from 'commander';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from '../completion';

function parseShell(value: string): CompletionShell {
  if ((COMPLETION_SHELLS as readonly string[]).includes(value)) return value as CompletionShell;
  throw new InvalidArgumentError(`unknown shell "${value}" (one of: ${COMPLETION_SHELLS.join(', ')})`);
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(orchestrator completion bash)')
    .argument('<shell>', `${COMPLETION_SHELLS.join(' or ')}`, parseShell)
    .action(async (shell: CompletionShell) => {
      // The whole tree, whichever modules this invocation loaded (the CLI loads only the one it needs).
      const { buildProgram } = await import('../main');
      const full = await buildProgram(['node', 'orchestrator']);
      process.stdout.write(completionScript(full, shell));
    });
}
