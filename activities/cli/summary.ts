/**
 * A turn's summary and its cost arithmetic, pure: the CLI's session totals are cumulative, so a turn's
 * cost and tokens are deltas against the previous turn's, and with a metering gateway the meter's
 * figures (what was served) replace the CLI's own.
 */
import type { SessionMode } from '../../src/claude/args';
import { sumModelUsage, type StreamState, type UsageTotals } from '../../src/claude/stream';
import type { Logger } from '../../src/logger';
import { crossCheckCost } from '../../src/meter/cross-check';
import type { MeterHandle } from '../../src/meter/gateway';
import type { ClaudeTurnSummary, ParsedClaudeTurnInput } from './contract';

/** Characters of the result text kept in the summary. */
export const RESULT_TEXT_CAP = 2048;

const ZERO_USAGE: UsageTotals = { inputTokens: 0, outputTokens: 0, cacheRead: 0, cacheCreation: 0 };

function usageDelta(now: UsageTotals, before: UsageTotals | undefined): UsageTotals {
  const b = before ?? ZERO_USAGE;
  return {
    inputTokens: Math.max(0, now.inputTokens - b.inputTokens),
    outputTokens: Math.max(0, now.outputTokens - b.outputTokens),
    cacheRead: Math.max(0, now.cacheRead - b.cacheRead),
    cacheCreation: Math.max(0, now.cacheCreation - b.cacheCreation),
  };
}

/** Session totals only grow; an error result may report less (e.g. an empty modelUsage), never go back. */
function usageMax(a: UsageTotals, b: UsageTotals | undefined): UsageTotals {
  if (!b) return a;
  return {
    inputTokens: Math.max(a.inputTokens, b.inputTokens),
    outputTokens: Math.max(a.outputTokens, b.outputTokens),
    cacheRead: Math.max(a.cacheRead, b.cacheRead),
    cacheCreation: Math.max(a.cacheCreation, b.cacheCreation),
  };
}

/** Rounds away float noise (0.1 + 0.2) so deltas compare and display cleanly. */
export const roundUsd = (x: number): number => Math.round(x * 1e9) / 1e9;

/**
 * Builds the summary of one run from the parsed stream. Exported for tests of the cost arithmetic.
 * `costUsd` is a delta because `total_cost_usd` is cumulative for the session.
 */
export function summarizeRun(
  state: StreamState,
  input: Pick<ParsedClaudeTurnInput, 'sessionId' | 'previousSessionCostUsd' | 'previousSessionUsage'>,
  run: {
    ok: boolean;
    durationMs: number;
    transcriptPath: string;
    stderrPath: string;
    exitCode?: number;
    sessionMode: SessionMode;
  },
): ClaudeTurnSummary {
  const r = state.lastResult;
  const costKnown = typeof r?.total_cost_usd === 'number';
  // Session totals never shrink: a result without them (or a killed run) leaves the previous totals.
  const totalCostUsd = roundUsd(Math.max(r?.total_cost_usd ?? 0, input.previousSessionCostUsd));
  const sessionUsage = usageMax(sumModelUsage(r?.modelUsage), input.previousSessionUsage);
  const text = r ? (r.result ?? r.errors?.join('\n') ?? '') : '';
  return {
    sessionId: state.sessionId ?? input.sessionId,
    ok: run.ok,
    subtype: r?.subtype ?? 'none',
    resultText: text.length > RESULT_TEXT_CAP ? `${text.slice(0, RESULT_TEXT_CAP)}…` : text,
    numTurns: r?.num_turns ?? state.turns,
    durationMs: r?.duration_ms ?? run.durationMs,
    totalCostUsd,
    costUsd: Math.max(0, roundUsd(totalCostUsd - input.previousSessionCostUsd)),
    costKnown,
    usage: usageDelta(sessionUsage, input.previousSessionUsage),
    sessionUsage,
    modelUsage: r?.modelUsage ?? {},
    model: state.model,
    transcriptPath: run.transcriptPath,
    stderrPath: run.stderrPath,
    lastTool: state.lastTool,
    exitCode: run.exitCode,
    sessionMode: run.sessionMode,
  };
}

/**
 * Replaces the CLI's cost figures with the meter's (what was served, on the served model) and warns when
 * the CLI's own figure differs by more than 1%: a price table out of date, or a response the meter missed.
 */
export function meterSummary(
  summary: ClaudeTurnSummary,
  handle: MeterHandle,
  log: Logger,
  crossCheck: boolean,
): void {
  const spent = handle.spent();
  const cli = summary.costUsd;
  summary.cliCostUsd = cli;
  summary.microUsd = spent.microUsd;
  summary.costUsd = spent.microUsd / 1e6;
  summary.usage = {
    inputTokens: spent.usage.input_tokens,
    outputTokens: spent.usage.output_tokens,
    cacheRead: spent.usage.cache_read_input_tokens,
    cacheCreation: spent.usage.cache_creation_input_tokens,
  };
  if (!crossCheck || !summary.costKnown) return;
  const check = crossCheckCost(spent.microUsd, cli);
  if (check.disagree) {
    log.warn(
      {
        meterUsd: summary.costUsd,
        cliUsd: cli,
        relativeDiff: Math.round(check.relativeDiff * 1e4) / 1e4,
        models: Object.keys(spent.models),
        meterFile: handle.meterFile,
      },
      'CLI cost differs from the meter by more than 1%',
    );
  }
}
