/** `orchestrator run start|status|list|fork` and `checkpoint list|show|rollback`. */
import fs from 'node:fs';
import path from 'node:path';
import { type Client } from '@temporalio/client';
import Table from 'cli-table3';
import { type Command, InvalidArgumentError, Option } from 'commander';
import logUpdate from 'log-update';
import pc from 'picocolors';
import { loadIntake } from '../../../config/intake';
import { localPolicyDir } from '../../../config/templates';
import type { AppConfig } from '../../../config/env';
import { CheckpointIdSchema, phaseResultsQuery } from '../../shared/messages';
import { readRun, recordedResults } from '../../run-record';
import type { RunStatus } from '../../shared/run';
import type { ProjectSpec } from '../../shared/spec';
import {
  forkRun,
  InvalidListQueryError,
  listRuns,
  RUN_LIST_STATES,
  type RunListState,
  queryCheckpointsWithBaseline,
  queryStatus,
  rollbackRun,
  startRun,
  watchRun,
} from '../../runs';
import { preflight } from '../../preflight';
import { checkWorkspacePath } from '../../workspace-path';
import { startRehearsal } from '../../rehearsal';
import {
  CliError,
  configFrom,
  loggerFor,
  printJson,
  runOptions,
  type RunChoice,
  withClient,
  withRun,
} from '../context';
import { withLocalWorker } from '../local-worker';
import { oneLine, renderStatus, renderSummary } from '../render';
import { createSandbox, describeSandbox } from '../../../activities/sandbox';
import { readSandboxRecord } from '../../../activities/sandbox/record';

/** For positional arguments, checked inside an action: a one-line CliError rather than commander's. */
function checkpointArg(value: string): string {
  const r = CheckpointIdSchema.safeParse(value);
  if (!r.success)
    throw new CliError(`checkpoint: ${r.error.issues[0]?.message ?? 'invalid'} (got "${value}")`, 2);
  return value;
}

export function parseCheckpointId(value: string): string {
  const r = CheckpointIdSchema.safeParse(value);
  if (!r.success)
    throw new InvalidArgumentError(`${r.error.issues[0]?.message ?? 'invalid'} (got "${value}")`);
  return value;
}

/** Live progress until the run closes; returns the final status. */
export async function followRun(client: Client, runId: string, json: boolean): Promise<RunStatus> {
  let tick = 0;
  const tty = process.stdout.isTTY && !json;
  const final = await watchRun(client, runId, (s) => {
    if (tty) logUpdate(renderStatus(s, tick++));
  });
  if (tty) logUpdate.done();
  return final;
}

export function registerRunCommands(program: Command): void {
  const run = program.command('run').description('start, watch, list and fork project runs');

  run
    .command('start')
    .description('validate an intake file and start a project run')
    .requiredOption('--intake <file>', 'intake YAML')
    .requiredOption('--workspace <dir>', 'directory the agents work in (created if missing)')
    .option('--run-id <id>', 'workflow id to use (default: <project-slug>-<random>)')
    .option('--wait', 'show live progress and wait for the run to finish')
    .option(
      '--rehearse',
      'zero tokens: model agents talk to a local Messages-API server and this process runs the worker (implies --wait)',
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        opts: {
          intake: string;
          workspace: string;
          runId?: string;
          wait?: boolean;
          rehearse?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        // Intake and setup are validated before anything talks to Temporal: a bad file never starts a workflow.
        const base = configFrom(cmd);
        checkWorkspacePath(opts.workspace);
        const spec = await preflight(
          loadIntake(opts.intake, undefined, { policyDir: localPolicyDir(opts.intake) }),
          {
            config: base,
            intakeDir: path.dirname(path.resolve(opts.intake)),
            rehearse: opts.rehearse,
          },
        );
        if (opts.rehearse) {
          await rehearse(spec, opts, base);
          return;
        }
        await withClient(cmd, async (client, config) => {
          const input = await startRun(client, {
            spec,
            workspace: opts.workspace,
            outputsDir: config.outputsDir,
            taskQueue: config.temporal.taskQueue,
            runId: opts.runId,
          });
          if (!opts.wait) {
            if (opts.json) printJson({ runId: input.runId, workspace: input.workspace });
            else {
              process.stdout.write(`started run ${pc.bold(input.runId)} (${spec.phases.length} phases)\n`);
              process.stdout.write(`  watch:  orchestrator run status ${input.runId} --watch\n`);
              process.stdout.write(
                `  needs a worker on task queue "${config.temporal.taskQueue}": orchestrator worker\n`,
              );
            }
            return;
          }
          const final = await followRun(client, input.runId, Boolean(opts.json));
          if (opts.json) printJson(final);
          else process.stdout.write(renderSummary(final) + '\n');
          if (final.state !== 'completed') process.exitCode = 1;
        });
      },
    );

  runOptions(run.command('status [runId]'))
    .description('show a run (default: the most recent one)')
    .option('--watch', 'refresh until the run ends')
    .option('--json', 'print JSON')
    .action(
      async (
        runIdArg: string | undefined,
        opts: RunChoice & { watch?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId) => {
          if (opts.watch) {
            const final = await followRun(client, runId, Boolean(opts.json));
            if (opts.json) printJson(final);
            else process.stdout.write(renderStatus(final) + '\n');
            return;
          }
          const s = await queryStatus(client, runId);
          if (opts.json) printJson(s);
          else {
            process.stdout.write(renderStatus(s) + '\n');
            process.stdout.write(`${await sandboxLine(s, configFrom(cmd).outputsDir)}\n`);
          }
        });
      },
    );

  runOptions(run.command('cancel [runId]'))
    .description(
      'cancel a run (default: the most recent one): its running agents are ended, what is checkpointed stays, and it ends "cancelled"',
    )
    .option('--wait', 'wait until the run has ended')
    .action(async (runIdArg: string | undefined, opts: RunChoice & { wait?: boolean }, cmd: Command) => {
      await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId) => {
        const handle = client.workflow.getHandle(runId);
        const desc = await handle.describe();
        if (desc.status.name !== 'RUNNING')
          throw new CliError(`run ${runId} has already ended (${desc.status.name.toLowerCase()})`);
        await handle.cancel();
        if (!opts.wait) return void process.stdout.write(`cancel requested for ${runId}\n`);
        await handle.result().catch(() => undefined);
        const s = await queryStatus(client, runId);
        process.stdout.write(`${runId} ${s.state}\n`);
      });
    });

  run
    .command('list')
    .description('list project runs')
    .option('--limit <n>', 'how many', (v) => positiveInt(v), 20)
    .addOption(new Option('--state <state>', 'only runs in this state').choices(RUN_LIST_STATES))
    .option('--client <name>', "only this client's runs (the intake's project.client)")
    .option('--project <name>', "only this project's runs (the intake's project.name; case does not matter)")
    .option(
      '--query <visibility query>',
      `a Temporal visibility query ANDed with the run filter, e.g. "StartTime > '2026-11-01T00:00:00Z'"`,
    )
    .option('--json', 'print JSON')
    .action(
      async (
        opts: {
          limit: number;
          state?: RunListState;
          client?: string;
          project?: string;
          query?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        await withClient(cmd, async (client) => {
          const rows = await listRuns(client, opts.limit, {
            state: opts.state,
            query: opts.query,
            client: opts.client,
            project: opts.project,
          }).catch((err: unknown) => {
            if (err instanceof InvalidListQueryError) throw new CliError(err.message, 2);
            throw err;
          });
          if (opts.json) return printJson(rows);
          const table = new Table({ head: ['run', 'state', 'project', 'client', 'started', 'closed'] });
          for (const r of rows)
            table.push([r.runId, r.state, r.project ?? '', r.client ?? '', r.started, r.closed ?? '']);
          process.stdout.write(table.toString() + '\n');
        });
      },
    );

  runOptions(run.command('fork [runId]'))
    .description(
      'start a new run from a checkpoint of another run (the workspace is a copy taken at that checkpoint)',
    )
    .requiredOption('--from <checkpoint>', 'checkpoint id, e.g. CP2', parseCheckpointId)
    .requiredOption('--workspace <dir>', 'new, empty directory for the fork')
    .option('--wait', 'show live progress and wait')
    .option('--json', 'print JSON')
    .action(
      async (
        runIdArg: string | undefined,
        opts: RunChoice & { from: string; workspace: string; wait?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        checkWorkspacePath(opts.workspace, 'fork workspace');
        await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId, config) => {
          const input = await forkRun(client, {
            runId,
            checkpoint: opts.from,
            workspace: opts.workspace,
            taskQueue: config.temporal.taskQueue,
          });
          if (!opts.wait) {
            if (opts.json) printJson({ runId: input.runId, forkedFrom: input.forkedFrom });
            else
              process.stdout.write(
                `forked ${runId}@${opts.from} as run ${pc.bold(input.runId)} in ${input.workspace}\n`,
              );
            return;
          }
          const final = await followRun(client, input.runId, Boolean(opts.json));
          if (opts.json) printJson(final);
          else process.stdout.write(renderSummary(final) + '\n');
        });
      },
    );

  const cp = program.command('checkpoint').description('list, show and roll back to checkpoints');
  runOptions(cp.command('list [runId]'))
    .description("list a run's checkpoints (default: the most recent run)")
    .option('--json', 'print JSON')
    .action(async (runIdArg: string | undefined, opts: RunChoice & { json?: boolean }, cmd: Command) => {
      await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId) => {
        const cps = await queryCheckpointsWithBaseline(client, runId);
        if (opts.json) return printJson(cps);
        const table = new Table({ head: ['id', 'label', 'commit', 'created', 'state'] });
        for (const c of cps)
          table.push([
            c.id,
            c.label,
            c.commit.slice(0, 12),
            c.createdAt,
            c.rolledBack ? 'rolled back' : 'live',
          ]);
        process.stdout.write(table.toString() + '\n');
      });
    });
  runOptions(cp.command('show <runIdOrCheckpoint> [checkpoint]'))
    .description(
      'show a checkpoint and its manifest (artifacts with sizes and sha256); `show CP2` is the most recent run',
    )
    .option('--json', 'print JSON')
    .action(
      async (
        first: string,
        second: string | undefined,
        opts: RunChoice & { json?: boolean },
        cmd: Command,
      ) => {
        const id = second ?? first;
        checkpointArg(id);
        const choice = { ...opts, arg: second === undefined ? undefined : first };
        await withRun(cmd, choice, async (client, runId) => {
          const cps = await queryCheckpointsWithBaseline(client, runId);
          const c = cps.find((x) => x.id === id);
          if (!c)
            throw new CliError(
              `run ${runId} has no checkpoint ${id}; it has: ${cps.map((x) => x.id).join(', ') || 'none'}`,
            );
          const manifest: unknown = fs.existsSync(c.manifestPath)
            ? JSON.parse(fs.readFileSync(c.manifestPath, 'utf8'))
            : undefined;
          if (opts.json) return printJson({ ...c, manifest });
          process.stdout.write(
            `${pc.bold(c.id)} ${c.label}  commit ${c.commit}\n  manifest: ${c.manifestPath}\n`,
          );
          const files =
            (manifest as { artifacts?: { path: string; size: number; sha256: string }[] } | undefined)
              ?.artifacts ?? [];
          const table = new Table({ head: ['artifact', 'bytes', 'sha256'] });
          for (const f of files) table.push([f.path, f.size, f.sha256.slice(0, 16)]);
          process.stdout.write(table.toString() + '\n');
        });
      },
    );
  runOptions(cp.command('rollback <runIdOrCheckpoint> [checkpoint]'))
    .description(
      'roll a running run back to a checkpoint (workspace restored exactly; later phases run again); `rollback CP1` is the most recent run',
    )
    .option('--reason <text>', 'why (goes into the audit trail)')
    .option('--json', 'print JSON')
    .action(
      async (
        first: string,
        second: string | undefined,
        opts: RunChoice & { reason?: string; json?: boolean },
        cmd: Command,
      ) => {
        const id = second ?? first;
        checkpointArg(id);
        const choice = { ...opts, arg: second === undefined ? undefined : first };
        await withRun(cmd, choice, async (client, runId) => {
          const r = await rollbackRun(client, runId, id, opts.reason);
          if (opts.json) printJson(r);
          else
            process.stdout.write(
              `rolled back ${runId} to ${r.checkpoint}; continuing with ${r.resumesAt ?? 'the end of the run'}\n`,
            );
        });
      },
    );

  runOptions(program.command('results [runId]'))
    .description("print a run's phase results (default: the most recent run)")
    .option('--json', 'print JSON')
    .action(async (runIdArg: string | undefined, opts: RunChoice & { json?: boolean }, cmd: Command) => {
      await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId) => {
        // By query while a worker answers; a closed run without one answers from its record.
        const results = await readRun(
          client,
          runId,
          () => client.workflow.getHandle(runId).query(phaseResultsQuery),
          // A closed run without a worker (or one too slow to answer) still says which phase failed and why.
          recordedResults,
        );
        if (opts.json) return printJson(results);
        const table = new Table({
          head: ['phase', 'attempt', 'status', 'ms', 'cost', 'artifacts', 'checkpoint'],
        });
        for (const r of results)
          table.push([
            r.phase,
            r.attempt,
            r.status,
            r.duration_ms ?? '',
            r.costUsd.toFixed(4),
            r.artifactTotals?.files ?? r.artifacts?.length ?? 0,
            r.checkpoint ?? '',
          ]);
        process.stdout.write(table.toString() + '\n');
        // Why each failed attempt failed, in words (`--json` has the full results).
        for (const r of results.filter((x) => x.status === 'failed' && x.errors.length > 0)) {
          process.stdout.write(`${r.phase} (attempt ${r.attempt}) failed:\n`);
          for (const e of r.errors) {
            // An agent's reason gets its classified type (`agent dev-1: [RateLimited] …`).
            const a = r.agents.find((x) => x.errorType && e.startsWith(`agent ${x.agentId}: `));
            const said = a ? e.slice(`agent ${a.agentId}: `.length) : e;
            // The type once: a reason that already starts with it keeps its own words.
            const line =
              a && !said.startsWith(a.errorType!) ? `agent ${a.agentId}: [${a.errorType}] ${said}` : e;
            process.stdout.write(`  - ${oneLine(line)}\n`);
          }
        }
      });
    });
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError(`must be a positive whole number, got "${v}"`);
  return n;
}

/** `run start --rehearse`: a local model server and an in-process worker on a private task queue. */
async function rehearse(
  spec: ProjectSpec,
  opts: { workspace: string; runId?: string; json?: boolean },
  base: AppConfig,
): Promise<void> {
  const rehearsal = await startRehearsal({
    ...base,
    // Only this process's worker, pointed at the local model server, serves this queue: zero tokens.
    temporal: { ...base.temporal, taskQueue: `rehearse-${process.pid}-${Date.now()}` },
  });
  if (!opts.json)
    process.stderr.write(pc.yellow(`rehearsal: model agents use ${rehearsal.server.url} (zero tokens)\n`));
  try {
    await withLocalWorker(
      rehearsal.config,
      loggerFor({ ...rehearsal.config, logLevel: 'warn' }),
      async (client) => {
        const input = await startRun(client, {
          spec,
          workspace: opts.workspace,
          outputsDir: base.outputsDir,
          taskQueue: rehearsal.config.temporal.taskQueue,
          runId: opts.runId,
        });
        const final = await followRun(client, input.runId, Boolean(opts.json));
        if (opts.json) printJson(final);
        else process.stdout.write(renderSummary(final) + '\n');
        if (final.state !== 'completed') process.exitCode = 1;
      },
    );
  } finally {
    await rehearsal.close();
  }
}

/**
 * Whether the run's agent commands are confined: what the worker that ran them recorded in the run's
 * outputs folder, or, before any agent started, what this host would do.
 */
async function sandboxLine(s: RunStatus, outputsDir: string): Promise<string> {
  const recorded = readSandboxRecord(path.join(s.outputsDir ?? outputsDir, s.runId));
  if (recorded) return recorded.line;
  const here = await createSandbox({ outputsDir }).state();
  return `${describeSandbox(here)} [probed on this host: no agent of this run has started yet]`;
}
