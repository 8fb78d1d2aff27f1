/**
 * Shell completion scripts, generated from the command tree itself so they never drift from it: every
 * command path (`checkpoint rollback`) with its subcommands and options. Static: completing a word runs
 * no orchestrator process (which would have to start Node and connect to Temporal per keystroke).
 */
import type { Command } from 'commander';

/** Shells `orchestrator completion` writes a script for. */
export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** One command path ('' for the program) and the words that may follow it. */
interface Node {
  path: string;
  words: string[];
}

function walk(cmd: Command, prefix: string[], out: Node[]): void {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const options = cmd.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => Boolean(f));
  out.push({ path: prefix.join(' '), words: [...subs.map((c) => c.name()), ...options, '--help'] });
  for (const c of subs) walk(c, [...prefix, c.name()], out);
}

/** Shell-quotes a word list for a `compgen -W` argument (command and option names only). */
function wordList(words: string[]): string {
  return [...new Set(words)].filter((w) => /^[-A-Za-z0-9_:.]+$/.test(w)).join(' ');
}

/**
 * The completion script for `shell`. zsh gets the same function through `bashcompinit`, which zsh
 * ships for exactly this.
 */
export function completionScript(program: Command, shell: CompletionShell): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const cases = nodes.map((n) => `    ${JSON.stringify(n.path)}) words="${wordList(n.words)}" ;;`).join('\n');
  const bash = `# orchestrator completion (${shell}); load it with: source <(orchestrator completion ${shell})
_orchestrator_complete() {
  local cur path="" i w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  # The command path: the words before the cursor that name commands (not options or their values).
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case "\${path:+$path }$w" in
${nodes
  .filter((n) => n.path)
  .map((n) => `      ${JSON.stringify(n.path)}) path="${n.path}" ;;`)
  .join('\n')}
    esac
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _orchestrator_complete orchestrator
`;
  if (shell === 'bash') return bash;
  return `#compdef orchestrator\nautoload -U +X bashcompinit && bashcompinit\n${bash}`;
}
