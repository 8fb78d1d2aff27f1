/** `orchestrator runs prune`: housekeeping over many runs at once. */
import { type Command, InvalidArgumentError } from 'commander';
import pc from 'picocolors';
import { pruneRuns } from '../../prune';
import { DURATION_EXAMPLES, parseDuration } from '../../shared/duration';
import { printJson, withClient } from '../context';

/** `--older-than`: a duration, zero allowed (`0d`: every ended run). */
export function parseOlderThan(value: string): number {
  const ms = parseDuration(value, { allowZero: true });
  if (ms === undefined)
    throw new InvalidArgumentError(`must be a duration such as 7d, ${DURATION_EXAMPLES} (got "${value}")`);
  return ms;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function registerRunsCommands(program: Command): void {
  const runs = program.command('runs').description('housekeeping over many runs: prune');
  runs
    .command('prune')
    .description(
      "delete ended runs' outputs and workspace snapshots (shadow repositories); open runs are never touched",
    )
    .requiredOption(
      '--older-than <duration>',
      'only runs that ended at least this long ago, e.g. 7d',
      parseOlderThan,
    )
    .option('--dry-run', 'list what would be deleted and delete nothing')
    .option('--json', 'print JSON')
    .action(async (opts: { olderThan: number; dryRun?: boolean; json?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const r = await pruneRuns(client, { olderThanMs: opts.olderThan, dryRun: Boolean(opts.dryRun) });
        if (opts.json) return printJson(r);
        const verb = r.dryRun ? 'would delete' : 'deleted';
        for (const run of r.runs) {
          process.stdout.write(`${run.runId} ${pc.dim(`(${run.state}, ended ${run.closedAt})`)}\n`);
          for (const p of [run.outputs, run.shadow]) if (p) process.stdout.write(`  ${verb} ${p}\n`);
        }
        process.stdout.write(
          r.runs.length === 0
            ? 'nothing to prune\n'
            : `${r.dryRun ? 'dry run: ' : ''}${verb} ${mib(r.bytes)} of ${r.runs.length} ended run(s)\n`,
        );
      });
    });
}
