/**
 * `orchestrator`: a thin CLI over Temporal. Every failure that is the user's to fix prints one line
 * (no stack trace) and exits non-zero.
 *
 * Startup loads commander and nothing else: each command module is imported only when one of its
 * commands runs. bin/orchestrator.js runs this file compiled (dist/cli/main.js) and passes the command
 * manifest written at build time ({@link describeCommands}), which says which module owns which
 * top-level command and holds the help lines, so `--help` needs no command module at all.
 */
import fs from 'node:fs';
import { Command, CommanderError, Help } from 'commander';
import { deferWorkflowBundler } from '../../workers/lazy-bundler';
import { prestartWorkflowThread } from '../../workers/workflow-thread';

type Register = (program: Command) => void;

/**
 * Every command module and its register function. A new module is one line here; a new top-level
 * command inside a module needs nothing (the manifest is rebuilt from the modules).
 */
const COMMAND_MODULES: Record<string, () => Promise<Register>> = {
  infra: async () => (await import('./commands/infra')).registerInfraCommands,
  init: async () => (await import('./commands/init')).registerInitCommand,
  run: async () => (await import('./commands/run')).registerRunCommands,
  runs: async () => (await import('./commands/runs')).registerRunsCommands,
  demo: async () => (await import('./commands/demo')).registerDemoCommand,
  phases: async () => (await import('./commands/phases')).registerPhaseCommands,
  budget: async () => (await import('./commands/budget')).registerBudgetCommands,
  governance: async () => (await import('./commands/governance')).registerGovernanceCommands,
  team: async () => (await import('./commands/team')).registerTeamCommands,
  attach: async () => (await import('./commands/attach')).registerAttachCommand,
  completion: async () => (await import('./commands/completion')).registerCompletionCommand,
  schema: async () => (await import('./commands/schema')).registerSchemaCommand,
  skills: async () => (await import('./commands/skills')).registerSkillsCommands,
  tools: async () => (await import('./commands/tools')).registerToolsCommands,
};

/** One top-level command: the module that registers it and its line in `orchestrator --help`. */
export interface CommandManifestEntry {
  module: string;
  name: string;
  /** Help's term, e.g. `attach [options] [agentId]`. */
  term: string;
  description: string;
}

/** The package's version (src/cli/ and dist/cli/ both sit two folders below package.json). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * A commander error. The compiled CLI bundles commander into main.cjs while the command modules load it
 * from node_modules, so an error thrown by a module's copy is recognised by its shape, not its class.
 */
function isCommanderError(err: unknown): err is CommanderError {
  if (err instanceof CommanderError) return true;
  const e = err as { code?: unknown; exitCode?: unknown } | null;
  return (
    err instanceof Error &&
    typeof e?.code === 'string' &&
    e.code.startsWith('commander.') &&
    typeof e.exitCode === 'number'
  );
}

/** Commander's codes for output it was asked for (help, version): not failures. */
const ANSWERED = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

function baseProgram(): Command {
  return (
    new Command('orchestrator')
      .description('Durable teams of Claude coding agents on Temporal')
      .version(packageVersion(), '-V, --version', 'print the version')
      .option('--address <host:port>', 'Temporal frontend address (env TEMPORAL_ADDRESS)')
      .option('--namespace <ns>', 'Temporal namespace (env TEMPORAL_NAMESPACE)')
      .option('--task-queue <name>', 'task queue (env ORCHESTRATOR_TASK_QUEUE)')
      .option(
        '--profile <name>',
        'temporal.toml profile, as the temporal CLI reads it (env TEMPORAL_PROFILE)',
      )
      .option('--config-file <path>', 'the temporal.toml to read (env TEMPORAL_CONFIG_FILE)')
      .showHelpAfterError('(run with --help for usage)')
      .exitOverride()
      // Names become file paths and workflow ids: refuse a bad one before any command does anything.
      .hook('preAction', async (_program, action) => (await import('./names')).checkCommandNames(action))
  );
}

/** Loads every command module (the build step's manifest, and the fallback for unknown names). */
async function registerAll(program: Command): Promise<void> {
  const registers = await Promise.all(Object.values(COMMAND_MODULES).map((load) => load()));
  for (const register of registers) register(program);
}

/** Every top-level command with its module and help line; the build step writes it next to the CLI. */
export async function describeCommands(): Promise<CommandManifestEntry[]> {
  const help = new Help();
  const out: CommandManifestEntry[] = [];
  for (const [module, load] of Object.entries(COMMAND_MODULES)) {
    const program = baseProgram();
    (await load())(program);
    for (const cmd of program.commands) {
      out.push({
        module,
        name: cmd.name(),
        term: help.subcommandTerm(cmd),
        description: help.subcommandDescription(cmd),
      });
    }
  }
  return out;
}

/**
 * The top-level command named in argv (`help X` names X), skipping the program's own options and
 * their values; undefined when argv names none (`--help`, nothing at all).
 */
export function commandNameIn(program: Command, args: string[]): string | undefined {
  const takesValue = new Set(
    program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short]),
  );
  const operands: string[] = [];
  for (let i = 0; i < args.length && operands.length < 2; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (!a.includes('=') && takesValue.has(a)) i++;
      continue;
    }
    operands.push(a);
  }
  return operands[0] === 'help' ? operands[1] : operands[0];
}

/**
 * The program for these arguments. With a manifest, only the module owning the named command is
 * loaded; with none named, the manifest's placeholders print the same help the full program would.
 * Without a manifest (run from source), or for a name it does not know, every module is loaded.
 */
export async function buildProgram(argv: string[], manifest?: CommandManifestEntry[]): Promise<Command> {
  const program = baseProgram();
  if (manifest) {
    const name = commandNameIn(program, argv.slice(2));
    // A worker's slowest step, the SDK's workflow thread booting, starts before its modules load
    // (`dev` runs one too, once its server is up).
    if ((name === 'worker' || name === 'dev') && !argv.includes('--help') && !argv.includes('-h'))
      prestartWorkflowThread();
    const owner = manifest.find((e) => e.name === name);
    const load = owner && COMMAND_MODULES[owner.module];
    if (load) {
      // Before any command module loads the Temporal SDK: its bundler (webpack) only when it bundles.
      deferWorkflowBundler();
      (await load())(program);
      return program;
    }
    if (name === undefined) {
      const terms = new Map(manifest.map((e) => [e.name, e.term]));
      for (const e of manifest) program.command(e.name).description(e.description);
      program.configureHelp({
        subcommandTerm: (cmd) => terms.get(cmd.name()) ?? new Help().subcommandTerm(cmd),
      });
      return program;
    }
  }
  deferWorkflowBundler();
  await registerAll(program);
  return program;
}

/**
 * `orchestrator --help` written ahead by the build step (dist/cli/help.json), so that bin/orchestrator.js
 * prints it without loading this module and commander: `plain` at commander's default 80 columns (output
 * that is not a terminal, or an 80-column one), `wide` for a terminal at least `from` columns wide, where
 * commander wraps nothing.
 */
export interface PrerenderedHelp {
  plain: string;
  wide?: { from: number; text: string };
}

/** What `orchestrator --help` prints at `width` columns (80 when not a terminal), exactly as it runs. */
async function renderHelp(manifest: CommandManifestEntry[], width: number): Promise<string> {
  const args = ['node', 'orchestrator', '--help'];
  const program = await buildProgram(args, manifest);
  let out = '';
  program.configureOutput({
    writeOut: (s) => {
      out += s;
    },
    getOutHelpWidth: () => width,
  });
  try {
    await program.parseAsync(args);
  } catch (err) {
    if (!isCommanderError(err) || !ANSWERED.has(err.code)) throw err;
  }
  return out;
}

/** The help bin/orchestrator.js prints without loading the CLI; see {@link PrerenderedHelp}. */
export async function prerenderHelp(manifest: CommandManifestEntry[]): Promise<PrerenderedHelp> {
  const plain = await renderHelp(manifest, 80);
  const unwrapped = await renderHelp(manifest, 100_000);
  const from = Math.max(...unwrapped.split('\n').map((line) => line.length));
  // Wrapping only grows with narrower widths: unwrapped at `from` columns is unwrapped at any wider one.
  const wide = (await renderHelp(manifest, from)) === unwrapped ? { from, text: unwrapped } : undefined;
  return { plain, ...(wide && { wide }) };
}

/**
 * A reader that stops early (`run start … | head -1`) closes the pipe: that ends the output, not the
 * command with an unhandled EPIPE stack trace.
 */
function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

/** Parses argv and runs the command; a failure becomes one line on stderr and an exit code. */
export async function main(argv: string[], manifest?: CommandManifestEntry[]): Promise<void> {
  exitQuietlyOnClosedPipe(process.stdout);
  exitQuietlyOnClosedPipe(process.stderr);
  try {
    await (await buildProgram(argv, manifest)).parseAsync(argv);
  } catch (err) {
    if (isCommanderError(err)) {
      // Commander has already printed its message (and help on request). A usage error (unknown
      // command or option, missing or invalid argument) exits 2, as shells and getopt tools do.
      process.exitCode = ANSWERED.has(err.code) ? 0 : 2;
      return;
    }
    // Loaded only on failure: the error classes it knows come with their modules (and the SDK).
    const { describeError } = await import('./errors');
    const { message, code } = describeError(err);
    process.stderr.write(`orchestrator: ${message}\n`);
    process.exitCode = code;
  }
}
