/**
 * The state of one `teamAgentWorkflow` in one place: its status (query `status`), its stop, its tasks,
 * its capability chain, the limits the metering gateway admits it under, its inbox, the session its
 * turns continue. ./agent-handlers change it; ./agent-turn and ./agent-workflow run on it.
 */
import {
  type CancellationScope,
  condition,
  getExternalWorkflowHandle,
  log,
  uuid4,
  type ExternalWorkflowHandle,
} from '@temporalio/workflow';
import type { FailureType } from '../../src/shared/failures';
import type { CapabilityState } from '../../src/shared/identity';
import type { MeterLimitsMessage } from '../../src/shared/messages';
import {
  agentDir,
  agentProgressSignal,
  type AgentProgress,
  type TeamAgentStatus,
  type TeamMessage,
  type TeamTask,
  teamHostLostSignal,
} from '../../src/shared/team';
import { isHostLost } from '../host-lost';
import { describe, type SessionUsage } from './failures';
import { agentFiles, type AgentFiles, scriptActivities } from './proxies';
import type { TeamAgentInput } from './types';

/** Whether an agent's work is done: it said so, or every task in its tasks.md is completed. */
export function workDone(reportedDone: boolean, tasks: { completed: number; total: number }): boolean {
  return reportedDone || (tasks.total > 0 && tasks.completed === tasks.total);
}

export class TeamAgentRun {
  readonly agent: TeamAgentInput['agent'];
  readonly settings: TeamAgentInput['settings'];
  readonly startedAt: string;
  readonly dir: string;
  readonly sessionId: string | undefined;
  readonly status: TeamAgentStatus;
  stopReason: string | undefined;
  reportedDone = false;
  finished = false;
  tasks: TeamTask[] = [];
  turnScope: CancellationScope | undefined;
  /** The agent's `agent` chain: what its next `taskDone` must prove. */
  cap: CapabilityState | undefined;
  /** The agent's team (the latest execution of its workflow id). */
  readonly team: ExternalWorkflowHandle;
  /** The limits the gateway admits this agent's requests under; the team sends new ones on a raise. */
  limits: MeterLimitsMessage;
  limitsVersion = 0;
  /** Reports to the team in flight: the workflow ends only after all are delivered (or failed). */
  readonly reports: Promise<void>[] = [];
  /**
   * Messages from teammates and users: the running turn's activity polls them into the live session;
   * what arrives between turns goes into the next turn's prompt.
   */
  readonly inbox: TeamMessage[] = [];
  deliveredSeq = 0;
  /** Messages enter the inbox only once the team vouches for them (patch `team-vouched-messages`). */
  vouched: boolean | undefined;
  /** The messages being vouched for, in the order they came. */
  deliveries: Promise<void> = Promise.resolve();
  /** The claude session's cost and usage so far (the CLI reports session totals). */
  session: { cost: number; usage: SessionUsage | undefined } = { cost: 0, usage: undefined };
  turnRunning = false;
  error: string | undefined;
  errorType: FailureType | undefined;
  /** The agent's system prompt and its process environment, once prepared. */
  persona = '';
  env: Record<string, string> = {};
  /** The team's host: where its directory operations and turns go; a move changes it (./host). */
  host: TeamAgentInput['host'];
  /** What prepared its directory: asked again on a new host, whose checkpoint may predate it. */
  prepareArgs: Parameters<AgentFiles['prepareTeamAgent']>[0] | undefined;

  constructor(readonly input: TeamAgentInput) {
    this.agent = input.agent;
    this.settings = input.settings;
    this.startedAt = new Date().toISOString();
    this.dir = agentDir(input.workspace, input.agent.id);
    this.sessionId = input.backend === 'cli' ? (input.sessionId ?? uuid4()) : undefined;
    this.status = {
      agentId: input.agent.id,
      name: input.agent.name,
      role: input.agent.role,
      state: 'starting',
      round: 0,
      turns: 0,
      costUsd: 0,
      tasks: { completed: 0, total: 0 },
      sessionId: this.sessionId,
      dir: this.dir,
    };
    this.cap = input.capability ? { anchor: input.capability.anchor, used: 0 } : undefined;
    this.team = getExternalWorkflowHandle(input.runId);
    this.limits = input.meter?.limits ?? {};
    this.host = input.host;
  }

  /** Its script turns, on the team's host when it has one. */
  get script(): ReturnType<typeof scriptActivities> {
    return scriptActivities(this.settings, this.host);
  }

  /** Its directory's operations: on the team's host when it has one. */
  get files(): AgentFiles {
    return agentFiles(this.host);
  }

  /**
   * Runs a step that goes to the team's host. When the host never took it (gone past its move time) and
   * the team moves (patch `team-host-move`), the team is told, and the step runs again on the host the
   * team moved to, after the agent's directory is prepared there again. Otherwise its failure is thrown.
   */
  async onHost<T>(step: () => Promise<T>): Promise<T> {
    for (;;) {
      const host = this.host;
      try {
        return await step();
      } catch (err) {
        if (!this.input.hostMoves || !host || !isHostLost(err)) throw err;
        await this.awaitMove(host.hostId, err);
      }
    }
  }

  private async awaitMove(lost: string, err: unknown): Promise<void> {
    if (this.host?.hostId === lost) {
      log.warn('host lost: waiting for the team to move', { agentId: this.agent.id, host: lost });
      await this.team
        .signal(teamHostLostSignal, { agentId: this.agent.id, host: lost })
        .catch((e: unknown) => {
          log.warn('host loss not reported to the team', { agentId: this.agent.id, error: describe(e) });
        });
      await condition(() => this.host?.hostId !== lost || this.stopReason !== undefined);
      if (this.host?.hostId === lost) throw err;
    }
    // The checkpoint the new host restored may predate the directory: prepared again (tasks.md is kept).
    const args = this.prepareArgs;
    if (args) await this.onHost(() => this.files.prepareTeamAgent(args));
  }

  /** Reports progress to the team; a report that cannot be delivered is logged, never fatal. */
  report(p: Omit<AgentProgress, 'agentId'>): void {
    this.reports.push(
      this.team.signal(agentProgressSignal, { agentId: this.agent.id, ...p }).catch((err: unknown) => {
        log.warn('progress not delivered to the team', { agentId: this.agent.id, error: describe(err) });
      }),
    );
  }

  complete(): boolean {
    return workDone(this.reportedDone, this.status.tasks);
  }
}
