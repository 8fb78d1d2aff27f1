/** Human-readable rendering of run status for `run start --wait`, `run status` and the demo. */
import pc from 'picocolors';
import { formatDuration } from '../shared/duration';
import type { AgentStatusRow, Checkpoint, PhaseStatus, RunStatus } from '../shared/run';

const PHASE_ICON: Record<PhaseStatus, string> = {
  pending: pc.dim('·'),
  running: pc.cyan('▶'),
  completed: pc.green('✓'),
  failed: pc.red('✗'),
  rolled_back: pc.yellow('↺'),
  skipped: pc.dim('–'),
  inherited: pc.dim('≡'),
};

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

function agentIcon(a: AgentStatusRow, tick: number): string {
  switch (a.state) {
    case 'completed':
      return pc.green('✓');
    case 'failed':
      return pc.red('✗');
    case 'cancelled':
      return pc.yellow('⊘');
    case 'skipped':
      return pc.dim('–');
    case 'running':
      return pc.cyan(SPINNER[tick % SPINNER.length] ?? '*');
    default:
      return pc.dim('·');
  }
}

/** One screen-friendly line of a reason: newlines folded, cut at {@link REASON_CHARS}. */
export function oneLine(text: string, max = REASON_CHARS): string {
  const flat = text.replace(/\s*\n\s*/g, ' ⏎ ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** How much of one failure reason human output shows (`--json` has all of it). */
const REASON_CHARS = 400;

/** A failed agent's classified error: `[RateLimited] the API answered 429 …`. */
function agentError(a: AgentStatusRow): string {
  const text = oneLine(a.error ?? '');
  return a.errorType && !text.startsWith(a.errorType) ? `[${a.errorType}] ${text}` : text;
}

/** `2026-12-14T20:00:00.000Z (in 13d 23h)` or `… (2h ago)`. */
function deadlineText(deadline: string, now: number): string {
  const due = Date.parse(deadline);
  if (Number.isNaN(due)) return deadline;
  return `${deadline} (${due >= now ? `in ${formatDuration(due - now)}` : `${formatDuration(now - due)} ago`})`;
}

export function formatUsd(n: number): string {
  return `$${n.toFixed(n < 1 ? 4 : 2)}`;
}

/** Renders the whole status block; `tick` animates running agents. */
export function renderStatus(s: RunStatus, tick = 0, now = Date.now()): string {
  const lines: string[] = [];
  const stateColor = s.state === 'completed' ? pc.green : s.state === 'failed' ? pc.red : pc.cyan;
  lines.push(
    `${pc.bold(s.project)} · run ${pc.bold(s.runId)} · ${stateColor(s.state)} · ${s.step.replace('step', 'Step')}`,
  );
  const width = Math.max(...s.phases.map((p) => p.name.length), 5);
  s.phases.forEach((p, i) => {
    const cp = p.checkpoint && p.status === 'completed' ? pc.dim(` → ${p.checkpoint}`) : '';
    const attempt = p.attempt > 1 ? pc.dim(` (attempt ${p.attempt})`) : '';
    lines.push(
      `  ${PHASE_ICON[p.status]} Step ${i + 1}/${s.phases.length} ${p.name.padEnd(width)}${cp}${attempt}`,
    );
    if (p.status === 'running' || p.status === 'failed') {
      for (const a of s.agents.filter((x) => x.phase === p.name)) {
        const err = a.error ? pc.red(` ${agentError(a)}`) : '';
        lines.push(`      ${agentIcon(a, tick)} ${a.id} ${pc.dim(`(${a.role}) ${a.state}`)}${err}`);
      }
    }
    if (p.status === 'failed')
      for (const e of p.errors ?? []) lines.push(`      ${pc.red('why:')} ${oneLine(e)}`);
  });
  const live = allCheckpoints(s)
    .filter((c) => !c.rolledBack)
    .map((c) => `${c.id} ${pc.dim(c.label)}`);
  if (live.length) lines.push(`  Checkpoints: ${live.join(', ')}`);
  for (const r of s.rollbacks) {
    lines.push(
      `  ${pc.yellow('↺')} rolled back to ${r.to}${r.fromPhase ? ` during ${r.fromPhase}` : ''}${r.reason ? `: ${r.reason}` : ''}`,
    );
  }
  if (s.pausedReason) lines.push(`  ${pc.yellow('!')} ${s.pausedReason}`);
  if (s.deadline) lines.push(`  Deadline: ${deadlineText(s.deadline, now)}`);
  for (const w of s.warnings ?? []) lines.push(`  ${pc.yellow('!')} ${w}`);
  if (s.error) lines.push(`  ${pc.red('✗')} ${oneLine(s.error, 2 * REASON_CHARS)}`);
  lines.push(`  Totals: ${s.totals.tokens} tokens, ${formatUsd(s.totals.costUsd)}`);
  return lines.join('\n');
}

/**
 * Every checkpoint a user can roll back or fork to, CP0 (the workspace before phase 1) first: what
 * `checkpoint list` shows, so the summaries and the list never disagree.
 */
export function allCheckpoints(s: RunStatus): Checkpoint[] {
  return s.baseline ? [s.baseline, ...s.checkpoints] : s.checkpoints;
}

/** The closing summary: checkpoints, rollbacks and what to do next. */
export function renderSummary(s: RunStatus, uiBase?: string): string {
  const lines = [renderStatus(s), ''];
  lines.push(pc.bold('Checkpoints'));
  for (const c of allCheckpoints(s)) {
    lines.push(
      `  ${c.id.padEnd(5)} ${c.label.padEnd(24)} ${c.commit.slice(0, 10)}${c.rolledBack ? pc.yellow('  (rolled back)') : ''}`,
    );
  }
  lines.push('', pc.bold('Next steps'));
  lines.push(`  orchestrator run status ${s.runId}`);
  lines.push(`  orchestrator checkpoint list ${s.runId}`);
  const lastCp = s.checkpoints.filter((c) => !c.rolledBack).at(-1);
  if (lastCp) lines.push(`  orchestrator run fork ${s.runId} --from ${lastCp.id} --workspace <dir>`);
  lines.push(`  outputs: ${s.outputsDir}/${s.runId}/`);
  if (uiBase) lines.push(`  Web UI: ${uiBase}/namespaces/default/workflows/${encodeURIComponent(s.runId)}`);
  return lines.join('\n');
}
