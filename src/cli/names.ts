/**
 * The CLI's entry check for names: every option and argument that names a run, team, agent, phase or
 * client is checked against the one pattern of src/shared/ids before the command's action runs, so a bad
 * `--run-id ../x` is refused before anything is read, written or started.
 */
import type { Command } from 'commander';
import { nameProblem, shown } from '../shared/ids';
import { CliError } from './context';

/** Option and argument names (commander's camelCase keys) that carry a name, and what to call them. */
const NAMED: Record<string, string> = {
  runId: 'run id',
  run: 'run id',
  workflow: 'run id',
  agent: 'agent id',
  agentId: 'agent id',
  as: 'agent id',
  phase: 'phase name',
  client: 'client name',
};
/** Arguments whose name alone does not say it (`phases show <name>` names a phase). */
const ARGUMENTS_BY_COMMAND: Record<string, Record<string, string>> = { show: { name: 'phase name' } };

/** Throws a {@link CliError} (exit code 2) naming the first bad name among `cmd`'s options and arguments. */
export function checkCommandNames(cmd: Command): void {
  const opts = cmd.opts<Record<string, unknown>>();
  for (const [key, kind] of Object.entries(NAMED)) check(kind, `--${dashed(key)}`, opts[key]);
  const byCommand = cmd.parent?.name() === 'phases' ? (ARGUMENTS_BY_COMMAND[cmd.name()] ?? {}) : {};
  cmd.registeredArguments.forEach((arg, i) => {
    const kind = NAMED[arg.name()] ?? byCommand[arg.name()];
    if (kind) check(kind, `<${arg.name()}>`, cmd.processedArgs[i]);
  });
}

function check(kind: string, where: string, value: unknown): void {
  if (value === undefined) return;
  const problem = nameProblem(value);
  if (problem) throw new CliError(`${where}: ${kind} ${shown(value)} ${problem}`, 2);
}

function dashed(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
