/** `orchestrator budget status|set|report`: a run's budget ledger, its limits and its cost report. */
import { type Client } from '@temporalio/client';
import Table from 'cli-table3';
import { type Command, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import { OPERATOR } from '../../shared/identity';
import type { BudgetReport, BudgetScope, SpendTotals } from '../../shared/budget';
import { phaseAgentIds, type BudgetStatus } from '../../shared/messages';
import type { BudgetLimit } from '../../shared/spec';
import { queryBudget, raiseBudget, runInput } from '../../runs';
import { chosenRunId, CliError, printJson, runOptions, type RunChoice, withRun } from '../context';
import { formatUsd } from '../render';

/**
 * Who runs the CLI, for the audit trail: the human operator. The operator holds no agent capability, and
 * is recorded as `operator` whatever the local user name (src/shared/identity).
 */
export function cliActor(): string {
  return OPERATOR;
}

/** `--max-usd`: a non-negative amount in dollars. */
export function parseUsd(value: string): number {
  const n = Number(value.trim().replace(/^\$/, ''));
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`must be a non-negative number of US dollars, e.g. 2.50 (got "${value}")`);
  return n;
}

/** `--max-tokens`: a non-negative whole number. */
export function parseTokens(value: string): number {
  const n = Number(value.trim().replace(/_/g, ''));
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`must be a non-negative whole number of tokens (got "${value}")`);
  return n;
}

const fmtTokens = (n: number) => n.toLocaleString('en-US');
const limitUsd = (l: BudgetLimit) => (l.usd === undefined ? pc.dim('—') : formatUsd(l.usd));
const limitTokens = (l: BudgetLimit) => (l.tokens === undefined ? pc.dim('—') : fmtTokens(l.tokens));
const leftUsd = (l: BudgetLimit, spent: number) =>
  l.usd === undefined ? pc.dim('—') : formatUsd(Math.max(0, l.usd - spent));
const leftTokens = (l: BudgetLimit, spent: number) =>
  l.tokens === undefined ? pc.dim('—') : fmtTokens(Math.max(0, l.tokens - spent));

/** How a report names its levels: a team's phases are its roles. */
function labels(team: boolean) {
  return {
    run: team ? 'team' : 'run',
    phase: (p: string) => (team ? `role ${p}` : `phase ${p}`),
    agent: (p: string, a: string) => (team ? `agent ${a} (${p})` : `agent ${p}/${a}`),
  };
}

/** Limits, spend and what is left per run, phase and agent (per team, role and agent for a team run). */
export function renderBudgetStatus(b: BudgetStatus): string {
  const r = b.report;
  const l = labels(b.kind === 'team');
  const stateColor = b.state === 'paused' ? pc.yellow : b.state === 'failed' ? pc.red : pc.cyan;
  const lines = [
    `${b.kind === 'team' ? 'team run' : 'run'} ${pc.bold(b.runId)} · ${stateColor(b.state)} · when a budget is exhausted: ${b.onExceeded}`,
  ];
  if (b.pausedReason) lines.push(`  ${pc.yellow('!')} ${b.pausedReason}`);
  const table = new Table({
    head: ['scope', 'limit USD', 'spent USD', 'left USD', 'limit tokens', 'spent tokens', 'left tokens'],
  });
  const row = (scope: string, limit: BudgetLimit, spent: SpendTotals) =>
    table.push([
      scope,
      limitUsd(limit),
      formatUsd(spent.usd),
      leftUsd(limit, spent.usd),
      limitTokens(limit),
      fmtTokens(spent.tokens),
      leftTokens(limit, spent.tokens),
    ]);
  row(l.run, r.run.limit, r.run);
  for (const p of r.phases) row(l.phase(p.phase), p.limit, p);
  for (const a of r.agents) row(l.agent(a.phase, a.agent), a.limit, a);
  lines.push(table.toString());
  if (r.run.reservedUsd > 0 || r.run.reservedTokens > 0) {
    lines.push(
      `  reserved by running agents: ${formatUsd(r.run.reservedUsd)}, ${fmtTokens(r.run.reservedTokens)} tokens`,
    );
  }
  return lines.join('\n');
}

/** The cost report: spend per run, phase, agent and model (team runs: per team, role, agent, model). */
export function renderBudgetReport(runId: string, r: BudgetReport, kind?: 'team'): string {
  const team = kind === 'team';
  const head = ['usd', 'tokens', 'input', 'output', 'cache write', 'cache read', 'charges'];
  const cells = (t: SpendTotals) => [
    formatUsd(t.usd),
    fmtTokens(t.tokens),
    fmtTokens(t.inputTokens),
    fmtTokens(t.outputTokens),
    fmtTokens(t.cacheCreationTokens),
    fmtTokens(t.cacheReadTokens),
    t.turns,
  ];
  const section = (title: string, key: string, rows: Array<[string, SpendTotals]>) => {
    const table = new Table({ head: [key, ...head] });
    for (const [name, t] of rows) table.push([name, ...cells(t)]);
    return `${pc.bold(title)}\n${table.toString()}`;
  };
  return [
    section(team ? 'Team' : 'Run', team ? 'team' : 'run', [[runId, r.run]]),
    section(
      team ? 'Roles' : 'Phases',
      team ? 'role' : 'phase',
      r.phases.map((p) => [p.phase, p]),
    ),
    section(
      'Agents',
      'agent',
      r.agents.map((a) => [team ? `${a.agent} (${a.phase})` : `${a.phase}/${a.agent}`, a]),
    ),
    section(
      'Models',
      'model',
      r.models.map((m) => [m.pricedAs ? `${m.model} (unknown: charged as ${m.pricedAs})` : m.model, m]),
    ),
  ].join('\n');
}

/**
 * Works out the budget scope from `--phase` (or `--role`) and `--agent`; an agent alone is looked up in
 * the run's phases, or in a team run's roles.
 */
async function scopeFor(
  client: Client,
  runId: string,
  given: { phase?: string; role?: string; agent?: string },
): Promise<BudgetScope> {
  if (given.phase !== undefined && given.role !== undefined && given.phase !== given.role)
    throw new CliError("give --phase or --role, not both (a team run's roles are its phases)", 2);
  const opts = { phase: given.phase ?? given.role, agent: given.agent };
  if (opts.agent !== undefined && opts.phase === undefined) {
    // Team runs: every agent is in the ledger under its role.
    const b = await queryBudget(client, runId);
    if (b.kind === 'team') {
      const roles = b.report.agents.filter((a) => a.agent === opts.agent).map((a) => a.phase);
      if (roles.length === 0) {
        const known = b.report.agents.map((a) => a.agent);
        throw new CliError(
          `team run ${runId} has no agent "${opts.agent}"; agents: ${known.join(', ') || 'none yet'}`,
        );
      }
      return { level: 'agent', phase: roles[0]!, agent: opts.agent };
    }
  }
  if (opts.agent === undefined) {
    return opts.phase === undefined ? { level: 'run' } : { level: 'phase', phase: opts.phase };
  }
  if (opts.phase !== undefined) return { level: 'agent', phase: opts.phase, agent: opts.agent };
  const { spec } = await runInput(client, runId);
  const phases = spec.phases.filter((p) => phaseAgentIds(p).includes(opts.agent!)).map((p) => p.name);
  if (phases.length === 1) return { level: 'agent', phase: phases[0]!, agent: opts.agent };
  if (phases.length === 0) {
    const known = spec.phases.flatMap((p) => phaseAgentIds(p).map((a) => `${p.name}/${a}`));
    throw new CliError(`run ${runId} has no agent "${opts.agent}"; agents: ${known.join(', ')}`);
  }
  throw new CliError(`agent "${opts.agent}" is in phases ${phases.join(', ')}: say which with --phase`);
}

export function registerBudgetCommands(program: Command): void {
  const budget = program
    .command('budget')
    .description('budgets: what a run may spend, what it spent, and raising a limit');

  runOptions(budget.command('status [runId]'))
    .description("a run's budget limits, spend and what is left (default: the most recent run)")
    .option('--json', 'print JSON')
    .action(async (runIdArg: string | undefined, opts: RunChoice & { json?: boolean }, cmd: Command) => {
      await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId) => {
        const b = await queryBudget(client, runId);
        if (opts.json) printJson(b);
        else process.stdout.write(renderBudgetStatus(b) + '\n');
      });
    });

  runOptions(budget.command('set'))
    .description(
      'set a budget limit of a running run (default: the most recent run; a paused run re-checks and continues)',
    )
    .option('--max-usd <usd>', 'limit in US dollars', parseUsd)
    .option('--max-tokens <n>', 'limit in tokens (every token kind counts)', parseTokens)
    .option('--phase <name>', 'limit this phase (default: the whole run)')
    .option('--role <name>', 'team runs: limit this role, every agent of it together')
    .option('--agent <id>', 'limit this agent (with --phase when the id is in several phases)')
    .option('--json', 'print JSON')
    .action(
      async (
        opts: RunChoice & {
          maxUsd?: number;
          maxTokens?: number;
          phase?: string;
          role?: string;
          agent?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        if (opts.maxUsd === undefined && opts.maxTokens === undefined)
          throw new CliError('give the new limit: --max-usd <usd> or --max-tokens <n>', 2);
        if (opts.maxUsd !== undefined && opts.maxTokens !== undefined)
          throw new CliError('give --max-usd or --max-tokens, not both (set them one at a time)', 2);
        chosenRunId(opts);
        await withRun(cmd, opts, async (client, runId) => {
          const scope = await scopeFor(client, runId, opts);
          const r = await raiseBudget(client, runId, {
            scope,
            ...(opts.maxUsd !== undefined ? { usd: opts.maxUsd } : {}),
            ...(opts.maxTokens !== undefined ? { tokens: opts.maxTokens } : {}),
            actor: cliActor(),
          });
          if (opts.json) return printJson(r);
          const where =
            scope.level === 'run'
              ? 'run'
              : scope.level === 'phase'
                ? `${opts.role !== undefined ? 'role' : 'phase'} ${scope.phase}`
                : `agent ${scope.phase}/${scope.agent}`;
          const parts = [
            r.limit.usd !== undefined ? formatUsd(r.limit.usd) : undefined,
            r.limit.tokens !== undefined ? `${fmtTokens(r.limit.tokens)} tokens` : undefined,
          ].filter(Boolean);
          process.stdout.write(
            `${runId}: ${where} budget is now ${parts.join(', ')}${r.wasPaused ? ' (the paused run re-checks its budgets now)' : ''}\n`,
          );
        });
      },
    );

  runOptions(budget.command('report [runId]'))
    .description('cost report per run, phase, agent and model (default: the most recent run)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(
      async (runIdArg: string | undefined, opts: RunChoice & { format: 'table' | 'json' }, cmd: Command) => {
        await withRun(cmd, { ...opts, arg: runIdArg }, async (client, runId) => {
          const b = await queryBudget(client, runId);
          if (opts.format === 'json')
            printJson({ runId, ...(b.kind ? { kind: b.kind } : {}), state: b.state, ...b.report });
          else process.stdout.write(renderBudgetReport(runId, b.report, b.kind) + '\n');
        });
      },
    );
}
