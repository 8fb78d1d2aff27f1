/**
 * `orchestrator demo`: the main job end to end on the embedded dev server. It starts (or reuses) the
 * project's detached dev server, runs a worker in this process, runs examples/demo.yaml through all six
 * phases with script agents that write real files, rolls back once to CP2 while phase 4 runs, and
 * prints the checkpoints, the rollback and the Web UI address. The server keeps running afterwards so the
 * run can be inspected; `orchestrator server stop` ends it.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command } from 'commander';
import pc from 'picocolors';
import { loadIntake } from '../../../config/intake';
import { localPolicyDir } from '../../../config/templates';
import { ensureDetachedServer } from '../../devserver';
import { rollbackRun, startRun, watchRun } from '../../runs';
import { statusQuery } from '../../shared/messages';
import { preflight } from '../../preflight';
import { startRehearsal, type Rehearsal } from '../../rehearsal';
import { withLocalWorker } from '../local-worker';
import { configFrom, loggerFor } from '../context';
import { renderSummary } from '../render';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the sample intake end to end on the embedded dev server, with one rollback')
    .option('--intake <file>', 'intake to run', path.join(ROOT, 'examples/demo.yaml'))
    .option('--no-rollback', 'skip the demonstration rollback')
    .action(async (opts: { intake: string; rollback: boolean }, cmd: Command) => {
      let config = configFrom(cmd);
      const spec = await preflight(
        loadIntake(opts.intake, undefined, { policyDir: localPolicyDir(opts.intake) }),
        {
          config,
          intakeDir: path.dirname(path.resolve(opts.intake)),
          rehearse: !config.anthropic.apiKey,
        },
      );
      const say = (s: string) => process.stdout.write(s + '\n');
      let uiUrl: string | undefined;
      // No address from a flag, TEMPORAL_ADDRESS or a temporal.toml profile: the demo brings its own server.
      if (config.temporal.addressSource === 'default') {
        say(pc.dim('starting the embedded Temporal dev server (SQLite under .orchestrator/)…'));
        const server = await ensureDetachedServer(config.home, 7233, 8233);
        uiUrl = server.uiUrl;
        config = { ...config, temporal: { ...config.temporal, address: server.address } };
      }
      let rehearsal: Rehearsal | undefined;
      if (!config.anthropic.apiKey) {
        rehearsal = await startRehearsal(config);
        config = rehearsal.config;
        say(
          pc.yellow(
            `ANTHROPIC_API_KEY is not set: rehearsal mode, model agents talk to a local Messages-API server at ${rehearsal.server.url} (zero tokens)`,
          ),
        );
      } else {
        say(pc.yellow('ANTHROPIC_API_KEY is set: model agents call the real Anthropic API and cost money'));
      }
      const logger = loggerFor({
        ...config,
        logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel,
      });
      try {
        await withLocalWorker(config, logger, async (client) => {
          const workspace = path.join(config.home, 'workspaces', `demo-${Date.now()}`);
          const input = await startRun(client, {
            spec,
            workspace,
            outputsDir: config.outputsDir,
            taskQueue: config.temporal.taskQueue,
          });
          say(`${pc.bold('run')} ${input.runId}  ${pc.dim(`workspace ${workspace}`)}`);
          let rolledBack = !opts.rollback;
          const seen = new Map<string, string>();
          const final = await watchRun(client, input.runId, (s) => {
            // One line per phase transition: readable in a terminal and in a CI log alike.
            s.phases.forEach((p, i) => {
              const key = `${p.status}#${p.attempt}`;
              if (seen.get(p.name) === key || p.status === 'pending') return;
              seen.set(p.name, key);
              const icon =
                p.status === 'completed'
                  ? pc.green('✓')
                  : p.status === 'failed'
                    ? pc.red('✗')
                    : p.status === 'running'
                      ? pc.cyan('▶')
                      : pc.yellow('↺');
              const cp = p.status === 'completed' && p.checkpoint ? pc.dim(` → ${p.checkpoint}`) : '';
              const attempt = p.attempt > 1 ? pc.dim(` (attempt ${p.attempt})`) : '';
              say(`  ${icon} Step ${i + 1}/${s.phases.length} ${p.name} ${p.status}${cp}${attempt}`);
            });
            if (
              !rolledBack &&
              s.currentPhase === spec.phases[3]?.name &&
              s.checkpoints.some((c) => c.id === 'CP3')
            ) {
              rolledBack = true;
              say(
                pc.yellow(
                  `  ↺ phase 4 (${s.currentPhase}) is running: rolling back to CP2 to show a rollback`,
                ),
              );
              rollbackRun(client, input.runId, 'CP2', 'demo: redo from the architecture checkpoint').then(
                (r) =>
                  say(
                    pc.yellow(
                      `  ↺ restored the workspace to CP2; continuing with ${r.resumesAt ?? 'the end'}`,
                    ),
                  ),
                (err: unknown) =>
                  say(pc.red(`  rollback failed: ${err instanceof Error ? err.message : String(err)}`)),
              );
            }
          });
          const status = await client.workflow
            .getHandle(input.runId)
            .query(statusQuery)
            .catch(() => final);
          say('');
          say(renderSummary(status, uiUrl));
          if (rehearsal)
            say(`  model server served ${rehearsal.server.requests.length} requests (rehearsal, $0 billed)`);
          if (uiUrl) {
            say('');
            say(
              `${pc.green('Web UI')}: ${uiUrl}  ${pc.dim('(the dev server keeps running; stop it with `orchestrator server stop`)')}`,
            );
            say(pc.dim(`  temporal workflow list --address ${config.temporal.address}`));
          }
          if (status.state !== 'completed') process.exitCode = 1;
        });
      } finally {
        await rehearsal?.close();
      }
    });
}
