/**
 * The state of one `projectWorkflow` execution in one place: what is carried across continue-as-new
 * (`st`), the audit trail, and what lives only as long as this execution (agents' rows, pauses, pending
 * requests, meters in flight). The modules of workflows/project/ act on it; the handlers read it.
 */
import { ApplicationFailure, CancellationScope, log } from '@temporalio/workflow';
import {
  createLedger,
  LedgerSchema,
  limitsFromSpec,
  totals as ledgerTotals,
  type Ledger,
} from '../../src/shared/budget';
import { zodIssueText } from '../../src/shared/zod-issues';
import type { AuditEntry } from '../../src/shared/audit';
import type { MeterCharged } from '../../src/shared/meter-charge';
import { agentIdAt, type RollbackRequest } from '../../src/shared/messages';
import type { AgentStatusRow, Checkpoint, RunState, RunStatus } from '../../src/shared/run';
import { type ProjectWorkflowInput, ProjectWorkflowInputSchema } from '../../src/shared/spec';
import { type AuditTrail, createAuditTrail } from '../audit';
import { Visibility } from '../visibility';
import { runAttributes, runDetails } from '../../src/shared/visibility';
import { workspace } from './proxies';
import { type CarriedState, type ProjectCarry, unpackCarry } from './carry';
import { stepText } from '../../src/shared/visibility';
import { deadlineWarning, effectiveState, pausedReason, phaseRows, runTotals } from './status';

/** What a run returns when it completes. */
export interface ProjectSummary {
  runId: string;
  state: RunState;
  checkpoints: Checkpoint[];
  phases: { name: string; status: string; attempt: number; checkpoint?: string }[];
  rollbacks: RunStatus['rollbacks'];
  totals: RunStatus['totals'];
  /** The ledger's run-wide spend (every attempt, rolled back or not). */
  budget: ReturnType<typeof ledgerTotals>;
  manifestPath?: string;
  /** CP0, when the run took one (see RunStatus.baseline). */
  baseline?: Checkpoint;
}

/** A metered agent start in flight: where its spend is recorded. */
export interface RunningMeter {
  key: string;
  meterId: string;
  phase: string;
  agent: string;
}

/** A phase waiting for a human's `approve`, and the decision once it came. */
export interface AwaitingApproval {
  phase: string;
  gates: string[];
  decision?: { note: string; approver?: string };
}

/**
 * Why a run waits, by waiter. Every change is a transition the Web UI shows (state and details), so the
 * map tells its run when it changes.
 */
class PauseMap extends Map<string, string> {
  onChange: () => void = () => undefined;
  override set(key: string, reason: string): this {
    super.set(key, reason);
    this.onChange();
    return this;
  }
  override delete(key: string): boolean {
    const had = super.delete(key);
    if (had) this.onChange();
    return had;
  }
}

/** `path: message; …` for zod issues, naming the input itself when the path is empty. */
export function issuesOf(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return zodIssueText({ issues });
}

/**
 * The run's input, validated. Runs can be started by `temporal workflow start` or another service, not
 * only by our CLI: a bad input fails the run with the field named, instead of a workflow task that
 * retries forever.
 */
export function parseProjectInput(raw: unknown): ProjectWorkflowInput {
  const parsed = ProjectWorkflowInputSchema.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid projectWorkflow input: ${issuesOf(parsed.error.issues)}`,
      'InvalidRunInput',
    );
  }
  return parsed.data;
}

/** The message of a failure, by its cause's type where it has one. */
export function failureMessage(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${(cause as { type?: string }).type ?? cause.name}: ${cause.message}`;
  return err instanceof Error ? err.message : String(err);
}

export class ProjectRun {
  readonly runId: string;
  readonly spec: ProjectWorkflowInput['spec'];
  readonly phases: ProjectWorkflowInput['spec']['phases'];
  readonly onExceeded: ProjectWorkflowInput['spec']['constraints']['on_budget_exceeded'];
  /** Everything continue-as-new carries. */
  readonly st: CarriedState & { ledger: Ledger };
  readonly audit: AuditTrail;
  state: RunState;
  currentPhase: string | undefined;
  readonly agentRows = new Map<string, AgentStatusRow>();
  pendingRollback: (RollbackRequest & { source: string }) | undefined;
  /** Rollbacks by request (not by gate) carried out: an update waits for its own. */
  rollbackRequestsServed = 0;
  /** The running phase attempt's scope: a rollback request cancels it. */
  phaseScope: CancellationScope | undefined;
  /** Refused signals (the last few), shown by status. */
  readonly rejected: { at: string; reason: string }[] = [];
  refusedSignals = 0;
  /** Why the run waits, by waiter (a budget per agent, an approval): non-empty means `paused`. */
  readonly pauses = new PauseMap();
  /** Bumped by every `raiseBudget`: budget waiters re-check when it moves. */
  budgetVersion = 0;
  /** Metered agent starts in flight, by child workflow id. */
  readonly runningMeters = new Map<string, RunningMeter>();
  /** Metered agents waiting in place (same session) for a raise, by child workflow id. */
  readonly budgetPausedAgents = new Set<string>();
  /** Per reservation key: what has been charged from its meter so far, per served model. */
  readonly meteredCharged = new Map<string, MeterCharged>();
  awaitingApproval: AwaitingApproval | undefined;
  /** What the deadline warning last logged said (late phases, overrunning). */
  private loggedDeadline: string | undefined;
  /** Search attributes and current details (workflows/visibility). */
  readonly visibility = new Visibility();

  constructor(
    readonly input: ProjectWorkflowInput,
    readonly carry: ProjectCarry | undefined,
  ) {
    this.runId = input.runId;
    this.spec = input.spec;
    this.phases = input.spec.phases;
    this.onExceeded = input.spec.constraints.on_budget_exceeded;
    const ctx = {
      runId: this.runId,
      outputsDir: input.outputsDir,
      phaseNames: this.phases.map((p) => p.name),
    };
    this.st = {
      ...unpackCarry(carry, ctx),
      // The carried ledger crossed a boundary (workflow input): validate it rather than trust it.
      ledger: carry?.ledger
        ? LedgerSchema.parse(carry.ledger)
        : createLedger(limitsFromSpec(this.spec, agentIdAt)),
    };
    this.audit = createAuditTrail({ runId: this.runId, outputsDir: input.outputsDir, carry: carry?.audit });
    this.state = carry ? 'running' : 'starting';
    this.pauses.onChange = () => this.publish();
  }

  /**
   * Shows the run's state to the Web UI and visibility queries: call after every transition (a phase
   * starts or ends, a pause, a rollback, the end). Attributes are upserted only when they change.
   */
  publish(): void {
    const s = this.status();
    const late = this.pastDeadline();
    // Logged when the run first overruns and whenever another phase ends late, not as the clock moves
    // (and never from a query, which must not change state).
    const key = late && `${late.late}:${late.overrunning}`;
    if (late && key !== this.loggedDeadline) {
      log.warn('run is past its deadline', { runId: this.runId, deadline: s.deadline, warning: late.text });
    }
    this.loggedDeadline = key;
    const limit = this.st.ledger.limits.run.microUsd;
    this.visibility.publish(
      runAttributes(s, this.spec.project.client),
      runDetails(s, limit === undefined ? undefined : limit / 1e6),
    );
  }

  isOver(): boolean {
    return this.state === 'completed' || this.state === 'failed' || this.state === 'cancelled';
  }

  liveCheckpoint(id: string): Checkpoint | undefined {
    if (id === this.st.baseline?.id) return this.st.baseline;
    return this.st.checkpoints.find((c) => c.id === id && !c.rolledBack);
  }

  /** What a rollback may go back to: CP0 (when taken) and the live checkpoints. */
  rollbackTargets(): Checkpoint[] {
    return this.st.baseline ? [this.st.baseline, ...this.st.checkpoints] : this.st.checkpoints;
  }

  effectiveState(): RunState {
    return effectiveState(this.state, this.pauses.size);
  }

  pausedReason(): string | undefined {
    return pausedReason(this.pauses.values(), this.rejected);
  }

  totals(): RunStatus['totals'] {
    return runTotals(this.st);
  }

  phaseRows(): RunStatus['phases'] {
    return phaseRows(this.phases, this.st);
  }

  forkedFrom(): RunStatus['forkedFrom'] {
    const f = this.input.forkedFrom;
    return f ? { runId: f.runId, checkpoint: f.checkpoint } : undefined;
  }

  status(): RunStatus {
    const late = this.pastDeadline();
    return {
      runId: this.runId,
      project: this.spec.project.name,
      state: this.effectiveState(),
      currentPhase: this.currentPhase,
      step: stepText(this.st.nextPhase, this.phases.length),
      phases: this.phaseRows(),
      agents: [...this.agentRows.values()],
      checkpoints: this.st.checkpoints,
      rollbacks: this.st.rollbacks,
      totals: this.totals(),
      pausedReason: this.pausedReason(),
      workspace: this.input.workspace,
      outputsDir: this.input.outputsDir,
      forkedFrom: this.forkedFrom(),
      continuedAsNew: this.st.continuedAsNew,
      ...(this.st.baseline ? { baseline: this.st.baseline } : {}),
      ...(this.input.deadline ? { deadline: this.input.deadline } : {}),
      ...(late ? { warnings: [late.text] } : {}),
      ...(this.st.host ? { host: this.st.host.hostId } : {}),
    };
  }

  /** How the run overran its deadline, if it did. */
  pastDeadline(): ReturnType<typeof deadlineWarning> {
    return deadlineWarning(this.input.deadline, this.st.phaseResults, this.isOver(), Date.now());
  }

  summary(manifestPath: string): ProjectSummary {
    return {
      runId: this.runId,
      state: this.state,
      checkpoints: this.st.checkpoints,
      phases: this.phaseRows(),
      rollbacks: this.st.rollbacks,
      totals: this.totals(),
      budget: ledgerTotals(this.st.ledger),
      manifestPath,
      ...(this.st.baseline ? { baseline: this.st.baseline } : {}),
    };
  }

  /** Ends the run as failed: records it, writes the manifest and the audit trail, then throws. */
  async failRun(message: string, type: string, details: Record<string, unknown>): Promise<never> {
    this.state = 'failed';
    this.publish();
    log.error('run failed', { runId: this.runId, type, message });
    this.audit.record('run', { event: 'failed', type, message });
    await CancellationScope.nonCancellable(async () => {
      await this.writeRunManifest();
      await this.audit.flush();
    });
    throw ApplicationFailure.nonRetryable(message, type, details);
  }

  /** The manifest at the run's end; a failure to write it must not replace the run's own error. */
  async writeFinalManifest(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      try {
        await this.writeRunManifest();
      } catch (e) {
        log.warn('could not write the run manifest', { runId: this.runId, error: failureMessage(e) });
      }
    });
  }

  /** Writes the run's manifest; `auditEntries` (from `audit.ride()`) are appended by the same call. */
  async writeRunManifest(auditEntries: readonly AuditEntry[] = []): Promise<string> {
    const t = this.totals();
    const live = this.st.phaseResults.filter((p) => p.status === 'completed' && p.checkpoint);
    const r = await workspace.updateRunManifest({
      outputsDir: this.input.outputsDir,
      runId: this.runId,
      project: this.spec.project.name,
      status: this.state,
      forkedFrom: this.forkedFrom(),
      phases: live.map((p) => p.phase),
      checkpoints: this.st.checkpoints
        .filter((c) => !c.rolledBack)
        .map((c) => ({ id: c.id, label: c.label, phase: c.phase, commit: c.commit, createdAt: c.createdAt })),
      costUsd: t.costUsd,
      usage: { ...t.usage },
      audit: { entries: this.audit.head().count, head: this.audit.head().head },
      ...(auditEntries.length > 0 ? { auditEntries: [...auditEntries] } : {}),
    });
    return r.path;
  }
}
