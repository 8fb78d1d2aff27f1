/** `orchestrator governance audit|validate|check|approve`: policies, gates and the audit trail. */
import path from 'node:path';
import { type Command } from 'commander';
import pc from 'picocolors';
import { checkGates } from '../../../activities/governance';
import { DEFAULT_POLICY_DIR, validatePolicies } from '../../../config/governance';
import type { AuditEntry } from '../../shared/audit';
import { readRunAudit, verifyRunAudit } from '../../audit';
import { approveRun } from '../../runs';
import { chosenRunId, CliError, printJson, runOptions, type RunChoice, withRun } from '../context';
import { cliActor } from './budget';

const SHOWN = 160;

function short(v: unknown): string {
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  const one = (text ?? '').replace(/\s+/g, ' ');
  return one.length > SHOWN ? `${one.slice(0, SHOWN - 1)}…` : one;
}

/** One line per entry; a failed gate's command output follows, indented. */
export function renderAudit(entries: AuditEntry[]): string {
  const lines: string[] = [];
  for (const e of entries) {
    const { summary, evidence, ...rest } = e.details as { summary?: unknown; evidence?: unknown } & Record<
      string,
      unknown
    >;
    const fields = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${short(v)}`)
      .join(' ');
    const kind = e.kind === 'gate' && rest.passed === false ? pc.red(e.kind.padEnd(13)) : e.kind.padEnd(13);
    lines.push(
      `${String(e.seq).padStart(4)} ${pc.dim(e.time)} ${e.actor.padEnd(10)} ${kind} ${fields}${summary ? ` · ${short(summary)}` : ''}`,
    );
    const tail = (evidence as { output_tail?: unknown } | undefined)?.output_tail;
    if (rest.passed === false && typeof tail === 'string' && tail.trim()) {
      const out = tail.trimEnd().split('\n').slice(-10);
      for (const l of out) lines.push(pc.dim(`       | ${l}`));
    }
  }
  return lines.join('\n');
}

export function registerGovernanceCommands(program: Command): void {
  const gov = program
    .command('governance')
    .description('governance: policy files, quality gates, approvals and the audit trail');

  runOptions(gov.command('audit'))
    .description(
      "print a run's audit trail (checkpoints, rollbacks, spawns, gates, budget events, approvals; default: the most recent run)",
    )
    .option(
      '--kind <kind>',
      'only entries of this kind (gate, budget, spawn, checkpoint, rollback, approval, …)',
    )
    .option('--verify', 'check the hash chain against what the run recorded (works without a worker)')
    .option('--json', 'print JSON')
    .action(async (opts: RunChoice & { kind?: string; verify?: boolean; json?: boolean }, cmd: Command) => {
      chosenRunId(opts);
      await withRun(cmd, opts, async (client, runId) => {
        if (opts.verify) {
          const v = await verifyRunAudit(client, runId);
          if (opts.json) printJson(v);
          else if (v.ok)
            process.stdout.write(
              `intact, ${v.count} entries, head ${v.head}\n${pc.dim(`${v.file} · checked against ${v.against}`)}\n`,
            );
          if (!v.ok) {
            if (opts.json) process.exitCode = 1;
            else
              throw new CliError(
                `audit trail of ${runId} is not intact: ${v.message} (${v.file}; checked against ${v.against})`,
              );
          }
          return;
        }
        const { entries, file, live } = await readRunAudit(client, runId);
        const shown = opts.kind ? entries.filter((e) => e.kind === opts.kind) : entries;
        if (opts.json) return printJson(shown);
        if (shown.length === 0) {
          process.stdout.write(
            `no audit entries for ${runId}${opts.kind ? ` of kind ${opts.kind}` : ''} (${file})\n`,
          );
          return;
        }
        process.stdout.write(renderAudit(shown) + '\n');
        process.stdout.write(
          pc.dim(`${shown.length} entries · ${file}${live ? '' : ' (no worker answered: file only)'}\n`),
        );
      });
    });

  gov
    .command('validate')
    .description('check the policy files (universal, default and every client, or one client)')
    .option('--client <name>', "check this client's layering only")
    .option('--dir <dir>', 'policy folder', DEFAULT_POLICY_DIR)
    .option('--json', 'print JSON')
    .action((opts: { client?: string; dir: string; json?: boolean }) => {
      const dir = path.resolve(opts.dir);
      const problems = validatePolicies({ client: opts.client, dir });
      if (opts.json) {
        printJson({ ok: problems.length === 0, dir, problems });
        if (problems.length) process.exitCode = 2;
        return;
      }
      if (problems.length === 0) {
        process.stdout.write(
          `policies OK (${opts.client ? `client ${opts.client}` : 'all clients'}) in ${dir}\n`,
        );
        return;
      }
      for (const p of problems) process.stderr.write(`${p}\n`);
      throw new CliError(`${problems.length} problem(s) in the governance policies`, 2);
    });

  gov
    .command('check')
    .description("run a phase's gates against a workspace, without a run")
    .requiredOption('--phase <name>', 'phase whose gates to run, e.g. qa')
    .requiredOption('--workspace <dir>', 'workspace to check')
    .option('--client <name>', 'client policy to apply')
    .option('--dir <dir>', 'policy folder', DEFAULT_POLICY_DIR)
    .option('--json', 'print JSON')
    .action(
      async (opts: { phase: string; workspace: string; client?: string; dir: string; json?: boolean }) => {
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        try {
          const r = await checkGates({
            workspace: opts.workspace,
            phase: opts.phase,
            client: opts.client,
            dir: path.resolve(opts.dir),
            signal: ac.signal,
          });
          if (!r.passed) process.exitCode = 1;
          if (opts.json) return printJson(r);
          if (r.results.length === 0) {
            process.stdout.write(`no gates for phase ${opts.phase}\n`);
            return;
          }
          for (const g of r.results) {
            const mark = g.passed ? pc.green('✓') : pc.red('✗');
            process.stdout.write(`${mark} ${g.id} (${g.kind}, on_fail ${g.on_fail}): ${g.summary}\n`);
            const tail = (g.evidence as { output_tail?: unknown }).output_tail;
            if (!g.passed && typeof tail === 'string' && tail.trim()) {
              for (const l of tail.trimEnd().split('\n').slice(-10))
                process.stdout.write(pc.dim(`    | ${l}\n`));
            }
          }
          const failed = r.results.filter((g) => !g.passed).length;
          process.stdout.write(
            failed
              ? pc.red(`${failed} of ${r.results.length} gate(s) failed\n`)
              : pc.green(`all ${r.results.length} gate(s) passed\n`),
          );
        } finally {
          process.removeListener('SIGINT', stop);
        }
      },
    );

  runOptions(gov.command('approve'))
    .description(
      'continue a run paused by a pause_for_approval gate, as if the gate had passed (default: the most recent run)',
    )
    .requiredOption('--note <text>', 'why (goes into the audit trail)')
    .option('--approver <name>', 'who approves (default: the current user)')
    .option('--json', 'print JSON')
    .action(async (opts: RunChoice & { note: string; approver?: string; json?: boolean }, cmd: Command) => {
      chosenRunId(opts);
      await withRun(cmd, opts, async (client, runId) => {
        const r = await approveRun(client, runId, {
          note: opts.note,
          approver: opts.approver ?? cliActor(),
        });
        if (opts.json) return printJson(r);
        process.stdout.write(
          `approved ${runId}: phase ${r.phase} continues despite gate(s) ${r.gates.join(', ')}\n`,
        );
      });
    });
}
