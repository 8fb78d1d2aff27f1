/**
 * `projectWorkflow`: runs an intake's phases in order. Each phase starts its agents (child
 * `agentWorkflow`s) by its strategy, validates its artifacts and takes checkpoint CP<n> (a shadow-git
 * snapshot plus a manifest). A rollback, by signal or update, cancels in-flight agents, restores the
 * workspace exactly and continues after the checkpoint. History stays small: results carry references,
 * and the run continues-as-new every few phases.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  checkpointsQuery,
  phaseResultsQuery,
  RollbackRequestSchema,
  rollbackSignal,
  rollbackUpdate,
  statusQuery,
  type RollbackRequest,
  type RollbackResult,
} from '../src/shared/messages';
import {
  addUsage,
  type AgentResult,
  type AgentStatusRow,
  type Checkpoint,
  type PhaseResult,
  type RunState,
  type RunStatus,
  totalTokens,
  ZERO_USAGE,
} from '../src/shared/run';
import type { PhaseSpec, ProjectWorkflowInput } from '../src/shared/spec';
import { agentWorkflow, agentWorkflowId, type AgentWorkflowInput } from './agent';
import { runStrategy } from './strategies';

/** Continue-as-new after this many phases in one run, or earlier when Temporal suggests it. */
export const PHASES_PER_RUN = 10;

/** State carried across continue-as-new. */
export interface ProjectCarry {
  nextPhase: number;
  phaseResults: PhaseResult[];
  checkpoints: Checkpoint[];
  cpCounter: number;
  rollbacks: RunStatus['rollbacks'];
  continuedAsNew: number;
}

export interface ProjectSummary {
  runId: string;
  state: RunState;
  checkpoints: Checkpoint[];
  phases: { name: string; status: string; attempt: number; checkpoint?: string }[];
  rollbacks: RunStatus['rollbacks'];
  totals: RunStatus['totals'];
  manifestPath?: string;
}

const workspace = proxyActivities<
  Pick<Activities, 'initWorkspace' | 'restoreWorkspace' | 'materializeCheckpoint' | 'updateRunManifest'>
>({
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['TargetNotEmpty', 'InvalidActivityInput'] },
});
const checkpointing = proxyActivities<Pick<Activities, 'checkpointPhase'>>({
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 5 },
});

class RollbackRequested extends Error {}

export async function projectWorkflow(
  input: ProjectWorkflowInput,
  carry?: ProjectCarry,
): Promise<ProjectSummary> {
  const { runId, spec } = input;
  const phases = spec.phases;
  const st: ProjectCarry = carry ?? {
    nextPhase: 0,
    phaseResults: [],
    checkpoints: [],
    cpCounter: 0,
    rollbacks: [],
    continuedAsNew: 0,
  };
  let state: RunState = carry ? 'running' : 'starting';
  let currentPhase: string | undefined;
  const agentRows = new Map<string, AgentStatusRow>();
  let pendingRollback: (RollbackRequest & { source: string }) | undefined;
  let rollbacksDone = st.rollbacks.length;
  let phaseScope: CancellationScope | undefined;
  const rejected: { at: string; reason: string }[] = [];

  const liveCheckpoint = (id: string) => st.checkpoints.find((c) => c.id === id && !c.rolledBack);
  const checkRollback = (req: unknown): RollbackRequest => {
    const parsed = RollbackRequestSchema.safeParse(req);
    if (!parsed.success) {
      throw new Error(
        `invalid rollback request: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`,
      );
    }
    if (state === 'completed' || state === 'failed')
      throw new Error(`run ${runId} has ${state}; fork it instead`);
    if (!liveCheckpoint(parsed.data.checkpoint)) {
      const known = st.checkpoints.filter((c) => !c.rolledBack).map((c) => c.id);
      throw new Error(
        `unknown checkpoint "${parsed.data.checkpoint}"; available: ${known.length ? known.join(', ') : 'none yet'}`,
      );
    }
    return parsed.data;
  };
  const requestRollback = (req: RollbackRequest, source: string) => {
    pendingRollback = { ...req, source };
    phaseScope?.cancel();
  };

  setHandler(rollbackSignal, (req) => {
    try {
      requestRollback(checkRollback(req), 'signal');
    } catch (err) {
      // A signal cannot be refused to its sender, so the refusal is recorded where status shows it.
      const reason = (err as Error).message;
      rejected.push({ at: new Date().toISOString(), reason });
      log.warn('rollback signal refused', { runId, reason });
    }
  });
  setHandler(
    rollbackUpdate,
    async (req): Promise<RollbackResult> => {
      const valid = checkRollback(req);
      const target = rollbacksDone + 1;
      requestRollback(valid, 'update');
      await condition(() => rollbacksDone >= target);
      const cp = liveCheckpoint(valid.checkpoint) ?? st.checkpoints.find((c) => c.id === valid.checkpoint);
      return { checkpoint: valid.checkpoint, resumesAt: cp ? phases[cp.phaseIndex + 1]?.name : undefined };
    },
    { validator: (req) => void checkRollback(req) },
  );
  setHandler(checkpointsQuery, () => st.checkpoints);
  setHandler(phaseResultsQuery, () => st.phaseResults);
  setHandler(statusQuery, (): RunStatus => buildStatus());

  function totals(): RunStatus['totals'] {
    // Rolled-back work still cost money: totals include every attempt.
    let usage = { ...ZERO_USAGE };
    let costUsd = 0;
    for (const r of st.phaseResults) {
      usage = addUsage(usage, r.usage);
      costUsd += r.costUsd;
    }
    return { usage, costUsd: round6(costUsd), tokens: totalTokens(usage) };
  }

  function phaseRows(): RunStatus['phases'] {
    return phases.map((p, i) => {
      const latest = [...st.phaseResults].reverse().find((r) => r.index === i);
      const status = latest
        ? latest.status === 'rolled_back' && i >= st.nextPhase
          ? 'pending'
          : latest.status
        : 'pending';
      return { name: p.name, status, attempt: latest?.attempt ?? 0, checkpoint: latest?.checkpoint };
    });
  }

  function buildStatus(): RunStatus {
    const shown = Math.min(st.nextPhase + 1, phases.length);
    return {
      runId,
      project: spec.project.name,
      state,
      currentPhase,
      step: `step ${shown}/${phases.length}`,
      phases: phaseRows(),
      agents: [...agentRows.values()],
      checkpoints: st.checkpoints,
      rollbacks: st.rollbacks,
      totals: totals(),
      pausedReason: rejected.length
        ? `last refused request: ${rejected[rejected.length - 1]?.reason}`
        : undefined,
      workspace: input.workspace,
      outputsDir: input.outputsDir,
      forkedFrom: input.forkedFrom
        ? { runId: input.forkedFrom.runId, checkpoint: input.forkedFrom.checkpoint }
        : undefined,
      continuedAsNew: st.continuedAsNew,
    };
  }

  async function runPhase(index: number, phase: PhaseSpec, result: PhaseResult): Promise<void> {
    const agents = phase.agents.map((a, i) => ({
      ...a,
      id: a.id ?? (i === 0 ? a.role : `${a.role}-${i + 1}`),
    }));
    const run = async (i: number, passedOutput: string | undefined): Promise<AgentResult> => {
      const agent = agents[i]!;
      const workflowId = agentWorkflowId(runId, phase.name, agent.id);
      const row: AgentStatusRow = {
        id: agent.id,
        role: agent.role,
        phase: phase.name,
        workflowId,
        state: 'running',
      };
      agentRows.set(workflowId, row);
      const childInput: AgentWorkflowInput = {
        runId,
        phase: phase.name,
        agent,
        workspace: input.workspace,
        phasePrompt: phase.prompt,
        projectName: spec.project.name,
        requirements: spec.requirements,
        passedOutput,
        env: {
          ORCHESTRATOR_RUN_ID: runId,
          ORCHESTRATOR_AGENT_ID: workflowId,
          ORCHESTRATOR_PHASE: phase.name,
          ORCHESTRATOR_WORKSPACE: input.workspace,
        },
      };
      try {
        const r = await executeChild(agentWorkflow, { workflowId, args: [childInput] });
        row.state = r.status === 'completed' ? 'completed' : 'failed';
        row.costUsd = r.costUsd;
        row.error = r.error;
        return r;
      } catch (err) {
        if (isCancellation(err)) {
          row.state = 'cancelled';
          throw err;
        }
        row.state = 'failed';
        row.error = err instanceof ChildWorkflowFailure ? (err.cause?.message ?? err.message) : String(err);
        return failedAgent(agent.id, agent.role, agent.backend, row.error);
      }
    };
    const outcome = await runStrategy(agents.length, phase.strategy, run, {
      ok: (r) => r.status === 'completed',
      output: (r) => r.summary,
    });
    for (const i of outcome.skipped) {
      const a = agents[i]!;
      agentRows.set(agentWorkflowId(runId, phase.name, a.id), {
        id: a.id,
        role: a.role,
        phase: phase.name,
        workflowId: agentWorkflowId(runId, phase.name, a.id),
        state: 'skipped',
      });
    }
    result.agents = outcome.results;
    for (const r of outcome.results) {
      result.usage = addUsage(result.usage, r.usage);
      result.costUsd = round6(result.costUsd + r.costUsd);
    }
    const failed = outcome.results.filter((r) => r.status !== 'completed');
    // fallback succeeds when any attempt succeeded; every other strategy needs all its agents.
    const phaseOk =
      phase.strategy.type === 'fallback'
        ? outcome.results.some((r) => r.status === 'completed')
        : failed.length === 0;
    if (!phaseOk) {
      result.errors.push(...failed.map((r) => `agent ${r.agentId}: ${r.error ?? r.status}`));
      return;
    }
    const cpId = `CP${st.cpCounter + 1}`;
    const cp = await checkpointing.checkpointPhase({
      workspace: input.workspace,
      outputsDir: input.outputsDir,
      runId,
      phase: phase.name,
      checkpoint: cpId,
      label: `post-${phase.name}`,
      artifacts: phase.artifacts,
    });
    result.artifacts = cp.files;
    if (!cp.ok || !cp.commit) {
      result.errors.push(...cp.errors);
      return;
    }
    st.cpCounter += 1;
    const checkpoint: Checkpoint = {
      id: cpId,
      label: `post-${phase.name}`,
      phase: phase.name,
      phaseIndex: index,
      commit: cp.commit,
      manifestPath: cp.manifestPath ?? '',
      createdAt: new Date().toISOString(),
      runId,
    };
    st.checkpoints.push(checkpoint);
    result.checkpoint = cpId;
    result.outputRef = cp.manifestPath;
  }

  async function performRollback(req: RollbackRequest & { source: string }): Promise<void> {
    state = 'rolling_back';
    const cp = liveCheckpoint(req.checkpoint)!;
    log.info('rolling back', { runId, checkpoint: cp.id, reason: req.reason, source: req.source });
    await CancellationScope.nonCancellable(() =>
      workspace.restoreWorkspace({ workspace: input.workspace, commit: cp.commit }),
    );
    const at = new Date().toISOString();
    for (const r of st.phaseResults) {
      if (r.index > cp.phaseIndex && r.status !== 'rolled_back') {
        r.status = 'rolled_back';
        r.rolledBackBy = cp.id;
      }
    }
    for (const c of st.checkpoints) if (c.phaseIndex > cp.phaseIndex) c.rolledBack = true;
    for (const row of agentRows.values()) {
      const idx = phases.findIndex((p) => p.name === row.phase);
      if (idx > cp.phaseIndex) agentRows.delete(row.workflowId);
    }
    st.rollbacks.push({ to: cp.id, reason: req.reason, at, fromPhase: currentPhase });
    st.nextPhase = cp.phaseIndex + 1;
    rollbacksDone = st.rollbacks.length;
    state = 'running';
  }

  // ---- main loop ----
  if (!carry) {
    const fork = input.forkedFrom;
    if (fork) {
      await workspace.materializeCheckpoint({
        sourceWorkspace: fork.sourceWorkspace,
        commit: fork.commit,
        targetWorkspace: input.workspace,
      });
    }
    await workspace.initWorkspace({ workspace: input.workspace });
    if (fork) {
      // The fork re-takes the checkpoint it starts from in its own shadow repository, under the same id,
      // so that it can roll back to it like any checkpoint of its own.
      const forkedPhase = phases[fork.phaseIndex];
      if (!forkedPhase)
        throw ApplicationFailure.nonRetryable(
          `fork: the intake has no phase ${fork.phaseIndex + 1}`,
          'InvalidFork',
        );
      const now = new Date().toISOString();
      for (let i = 0; i <= fork.phaseIndex; i++) {
        st.phaseResults.push({
          phase: phases[i]!.name,
          index: i,
          attempt: 1,
          status: 'inherited',
          startedAt: now,
          completedAt: now,
          duration_ms: 0,
          usage: { ...ZERO_USAGE },
          costUsd: 0,
          artifacts: [],
          errors: [],
          agents: [],
        });
      }
      const cp = await checkpointing.checkpointPhase({
        workspace: input.workspace,
        outputsDir: input.outputsDir,
        runId,
        phase: forkedPhase.name,
        checkpoint: fork.checkpoint,
        label: `post-${forkedPhase.name}`,
        artifacts: forkedPhase.artifacts,
      });
      if (!cp.ok || !cp.commit) {
        throw ApplicationFailure.nonRetryable(
          `fork: ${fork.checkpoint} does not validate: ${cp.errors.join('; ')}`,
          'InvalidFork',
        );
      }
      st.cpCounter = Number(fork.checkpoint.slice(2));
      st.checkpoints.push({
        id: fork.checkpoint,
        label: `post-${forkedPhase.name}`,
        phase: forkedPhase.name,
        phaseIndex: fork.phaseIndex,
        commit: cp.commit,
        manifestPath: cp.manifestPath ?? '',
        createdAt: now,
        runId,
      });
      st.phaseResults[fork.phaseIndex]!.checkpoint = fork.checkpoint;
      st.nextPhase = fork.phaseIndex + 1;
    }
  }
  state = 'running';
  let phasesThisRun = 0;

  while (st.nextPhase < phases.length) {
    if (pendingRollback) {
      const req = pendingRollback;
      pendingRollback = undefined;
      await performRollback(req);
      continue;
    }
    const index = st.nextPhase;
    const phase = phases[index]!;
    currentPhase = phase.name;
    const attempt = st.phaseResults.filter((r) => r.index === index).length + 1;
    const result: PhaseResult = {
      phase: phase.name,
      index,
      attempt,
      status: 'running',
      startedAt: new Date().toISOString(),
      usage: { ...ZERO_USAGE },
      costUsd: 0,
      artifacts: [],
      errors: [],
      agents: [],
    };
    st.phaseResults.push(result);
    if (phase.skip) {
      result.status = 'skipped';
      result.completedAt = result.startedAt;
      result.duration_ms = 0;
      st.nextPhase += 1;
      continue;
    }
    log.info('phase started', { runId, phase: phase.name, attempt });
    phaseScope = new CancellationScope();
    try {
      await phaseScope.run(async () => {
        await runPhase(index, phase, result);
        if (pendingRollback) throw new RollbackRequested();
      });
    } catch (err) {
      if (!(pendingRollback && (isCancellation(err) || err instanceof RollbackRequested))) throw err;
    } finally {
      phaseScope = undefined;
    }
    const completedAt = new Date().toISOString();
    result.completedAt = completedAt;
    result.duration_ms = Date.parse(completedAt) - Date.parse(result.startedAt);
    if (pendingRollback) {
      result.status = 'rolled_back';
      continue;
    }
    if (result.errors.length) {
      result.status = 'failed';
      state = 'failed';
      log.error('phase failed', { runId, phase: phase.name, errors: result.errors });
      await writeRunManifest();
      throw ApplicationFailure.nonRetryable(
        `phase "${phase.name}" failed: ${result.errors.join('; ')}`,
        'PhaseFailed',
        { phase: phase.name, errors: result.errors, checkpoints: st.checkpoints.map((c) => c.id) },
      );
    }
    result.status = 'completed';
    log.info('phase completed', { runId, phase: phase.name, checkpoint: result.checkpoint });
    st.nextPhase += 1;
    phasesThisRun += 1;

    if (
      st.nextPhase < phases.length &&
      (phasesThisRun >= PHASES_PER_RUN || workflowInfo().continueAsNewSuggested)
    ) {
      await condition(allHandlersFinished);
      if (!pendingRollback) {
        st.continuedAsNew += 1;
        return continueAsNew<typeof projectWorkflow>(input, st);
      }
    }
  }

  currentPhase = undefined;
  const manifestPath = await writeRunManifest();
  state = 'completed';
  await condition(allHandlersFinished);
  return {
    runId,
    state,
    checkpoints: st.checkpoints,
    phases: phaseRows(),
    rollbacks: st.rollbacks,
    totals: totals(),
    manifestPath,
  };

  async function writeRunManifest(): Promise<string> {
    const t = totals();
    const live = st.phaseResults.filter((p) => p.status === 'completed' && p.checkpoint);
    const r = await workspace.updateRunManifest({
      outputsDir: input.outputsDir,
      runId,
      project: spec.project.name,
      status: state,
      forkedFrom: input.forkedFrom
        ? { runId: input.forkedFrom.runId, checkpoint: input.forkedFrom.checkpoint }
        : undefined,
      phases: live.map((p) => p.phase),
      checkpoints: st.checkpoints
        .filter((c) => !c.rolledBack)
        .map((c) => ({ id: c.id, label: c.label, phase: c.phase, commit: c.commit, createdAt: c.createdAt })),
      costUsd: t.costUsd,
      usage: { ...t.usage },
    });
    return r.path;
  }
}

function failedAgent(agentId: string, role: string, backend: string, error: string): AgentResult {
  const now = new Date().toISOString();
  return {
    agentId,
    role,
    backend,
    status: 'failed',
    summary: '',
    usage: { ...ZERO_USAGE },
    costUsd: 0,
    error,
    startedAt: now,
    completedAt: now,
  };
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
