/**
 * Every signal, query and update, defined once and imported by both the workflows and the clients.
 * Their names are public API (`temporal workflow signal --name rollback`): never rename them.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { AgentStep, Checkpoint, PhaseResult, RunStatus } from './run';

export const CheckpointIdSchema = z.string().regex(/^CP[1-9][0-9]*$/, 'must be a checkpoint id like CP2');

export const RollbackRequestSchema = z.object({
  checkpoint: CheckpointIdSchema,
  reason: z.string().max(2000).optional(),
});
export type RollbackRequest = z.infer<typeof RollbackRequestSchema>;

export interface RollbackResult {
  checkpoint: string;
  /** The phase the run continues with. */
  resumesAt?: string;
}

/** Roll the run back to a checkpoint (fire-and-forget; an invalid request is recorded in the audit). */
export const rollbackSignal = defineSignal<[RollbackRequest]>('rollback');
/** Roll back and learn the outcome; the validator rejects an unknown checkpoint before it is recorded. */
export const rollbackUpdate = defineUpdate<RollbackResult, [RollbackRequest]>('rollbackToCheckpoint');

export const statusQuery = defineQuery<RunStatus>('status');
export const checkpointsQuery = defineQuery<Checkpoint[]>('checkpoints');
export const phaseResultsQuery = defineQuery<PhaseResult[]>('phaseResults');

/** Status of one agent workflow. */
export interface AgentWorkflowStatus {
  agentId: string;
  role: string;
  step: AgentStep;
  turns: number;
  lastTool?: string;
  costUsd: number;
  sessionId?: string;
}
export const agentStatusQuery = defineQuery<AgentWorkflowStatus>('status');
