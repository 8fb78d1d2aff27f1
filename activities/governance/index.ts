/**
 * Governance activities: quality gates evaluated against a workspace at a phase boundary.
 *
 * The workflow passes the gates it resolved for the phase (policy + intake, see config/governance
 * `gatesForPhase`); they arrive as plain records and are validated here. Results carry `on_fail` and
 * `max_retries` so the workflow can act on them without importing config/.
 */
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { asyncLocalStorage } from '@temporalio/activity';
import { z } from 'zod';
import { ConfigError, formatZodIssues } from '../../config/errors';
import { GateSchema, gatesForPhase, loadPolicy, type Gate } from '../../config/governance';
import type { Logger } from '../../src/logger';
import type { Sandbox } from '../sandbox';
import { evaluateGateList, type GateEvaluation } from './evaluate';

export type { GateEvaluation, GateResult } from './evaluate';
export { evaluateGateList } from './evaluate';

const EvaluateGatesInputSchema = z.object({
  workspace: z.string().startsWith('/', 'must be an absolute path'),
  phase: z.string().min(1),
  gates: z.array(z.unknown()),
});
export type EvaluateGatesInput = z.input<typeof EvaluateGatesInputSchema>;

/** How often a long gate (a test suite) heartbeats, so that cancellation reaches it. */
const HEARTBEAT_MS = 1_000;

function invalid(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** Builds the governance activities. */
export function createGovernanceActivities(deps: { logger: Logger; sandbox?: Sandbox }) {
  const { logger } = deps;
  return {
    /**
     * Evaluates `gates` against `workspace`. Fails non-retryably with type `InvalidGate` (a gate does not
     * match the schema) or `WorkspaceNotFound`; a gate that merely fails is a normal result.
     */
    async evaluateGates(input: EvaluateGatesInput): Promise<GateEvaluation & { phase: string }> {
      const parsed = EvaluateGatesInputSchema.safeParse(input);
      if (!parsed.success)
        throw invalid('InvalidGateInput', `evaluateGates: ${formatZodIssues(parsed.error).join('; ')}`);
      const { workspace, phase } = parsed.data;
      const gates: Gate[] = [];
      const problems: string[] = [];
      parsed.data.gates.forEach((g, i) => {
        const r = GateSchema.safeParse(g);
        if (r.success) gates.push(r.data);
        else problems.push(...formatZodIssues(r.error, `gates[${i}]`));
      });
      if (problems.length > 0) throw invalid('InvalidGate', `phase ${phase}: ${problems.join('; ')}`);

      // Outside an activity (direct calls in tests) there is no context to heartbeat to.
      const ctx = asyncLocalStorage.getStore();
      let current: string | undefined;
      const beat = ctx ? setInterval(() => ctx.heartbeat({ gate: current }), HEARTBEAT_MS) : undefined;
      try {
        const evaluation = await evaluateGateList({
          workspace,
          gates,
          signal: ctx?.cancellationSignal,
          sandbox: deps.sandbox,
          onGate: (g) => {
            current = g.id;
            ctx?.heartbeat({ gate: g.id });
            logger.debug({ phase, gate: g.id, kind: g.kind }, 'evaluating gate');
          },
        });
        const failed = evaluation.results.filter((r) => !r.passed).map((r) => r.id);
        logger.info({ phase, passed: evaluation.passed, gates: gates.length, failed }, 'gates evaluated');
        return { phase, ...evaluation };
      } catch (err) {
        if (err instanceof ConfigError) throw invalid('WorkspaceNotFound', err.message);
        throw err;
      } finally {
        if (beat) clearInterval(beat);
      }
    },
  };
}

export type GovernanceActivities = ReturnType<typeof createGovernanceActivities>;

/**
 * Evaluates the policy gates for `phase` against a workspace, outside any run (the CLI's
 * `governance check --phase qa --workspace DIR`); a relative workspace is taken from the current directory.
 * Throws ConfigError on a bad policy or workspace.
 */
export async function checkGates(opts: {
  workspace: string;
  phase: string;
  client?: string;
  /** Policy directory (default config/governance). */
  dir?: string;
  /** Extra gates as an intake phase would give them. */
  intakeGates?: unknown[];
  signal?: AbortSignal;
}): Promise<GateEvaluation & { phase: string; sources: string[] }> {
  const policy = loadPolicy({ client: opts.client, dir: opts.dir });
  const gates = gatesForPhase(policy, opts.phase, opts.intakeGates ?? []);
  const evaluation = await evaluateGateList({
    workspace: path.resolve(opts.workspace),
    gates,
    signal: opts.signal,
  });
  return { phase: opts.phase, sources: policy.sources, ...evaluation };
}
