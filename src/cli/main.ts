/**
 * `orchestrator`: a thin CLI over Temporal. Every failure that is the user's to fix prints one line
 * (no stack trace) and exits non-zero.
 */
import { Command, CommanderError } from 'commander';
import { ZodError } from 'zod';
import { ConfigError, formatZodIssues } from '../../config/errors';
import { CliError } from './context';
import { registerInfraCommands } from './commands/infra';
import { registerRunCommands } from './commands/run';
import { registerDemoCommand } from './commands/demo';
import { registerPhaseCommands } from './commands/phases';
import { registerBudgetCommands } from './commands/budget';
import { registerGovernanceCommands } from './commands/governance';
import { registerTeamCommands } from './commands/team';
import { registerAttachCommand } from './commands/attach';

export function buildProgram(): Command {
  const program = new Command('orchestrator')
    .description('Durable teams of Claude coding agents on Temporal')
    .option('--address <host:port>', 'Temporal frontend address (env TEMPORAL_ADDRESS)')
    .option('--namespace <ns>', 'Temporal namespace (env TEMPORAL_NAMESPACE)')
    .option('--task-queue <name>', 'task queue (env ORCHESTRATOR_TASK_QUEUE)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInfraCommands(program);
  registerRunCommands(program);
  registerDemoCommand(program);
  registerPhaseCommands(program);
  registerBudgetCommands(program);
  registerGovernanceCommands(program);
  registerTeamCommands(program);
  registerAttachCommand(program);
  return program;
}

/** Turns any error into a one-line message and an exit code. */
export function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof ConfigError) return { message: err.message, code: 2 };
  if (err instanceof CliError) return { message: err.message, code: err.exitCode };
  if (err instanceof ZodError) return { message: formatZodIssues(err).join('; '), code: 2 };
  if (err instanceof Error) return { message: err.message, code: 1 };
  return { message: String(err), code: 1 };
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (and help on request).
      process.exitCode = err.exitCode;
      return;
    }
    const { message, code } = describeError(err);
    process.stderr.write(`orchestrator: ${message}\n`);
    process.exitCode = code;
  }
}

await main(process.argv);
