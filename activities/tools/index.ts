/**
 * Tool activities for the api backend: each tool call the model makes is one `runTool` activity, so a crash
 * mid-loop resumes at the next call rather than redoing the conversation.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import type { Logger } from '../../src/logger';
import type { Sandbox } from '../sandbox';
import { executeTool, type ToolResult } from './tools';
import { TurnHeartbeat, type TurnNudges } from '../turn-heartbeat';

export {
  toolDefinitions,
  executeTool,
  ToolInputSchemas,
  ToolResultSchema,
  TOOL_NAMES,
  DEFAULT_COMMAND_TIMEOUT_S,
  type ToolDefinition,
  type ToolName,
  type ToolResult,
} from './tools';
export { resolveInWorkspace, WorkspaceEscapeError } from './workspace';
export { OUTPUT_CAP_BYTES } from './process';

export const RunToolInputSchema = z.object({
  workspace: z.string().startsWith('/', 'must be an absolute path'),
  name: z.string().min(1),
  /** The tool_use block's input, validated by the tool itself. */
  input: z.unknown(),
  /** The tools this agent may call (its `allowed_tools`); default all. */
  allowedTools: z.array(z.string()).optional(),
});
export type RunToolInput = z.infer<typeof RunToolInputSchema>;

export interface ToolActivityDeps {
  logger: Logger;
  /** Confines run_command and git; default the process's {@link defaultSandbox}. */
  sandbox?: Sandbox;
  /** Nudges a tool call whose agent workflow was cancelled into noticing at once (../turn-heartbeat). */
  nudges?: TurnNudges;
}

const HEARTBEAT_MS = 1_000;

export function createToolActivities({ logger, sandbox, nudges }: ToolActivityDeps) {
  return {
    /**
     * Runs one tool in the workspace. Returns `{ ok, output, error? }`; only a malformed activity input (a
     * workflow bug, not a model mistake) throws, as a non-retryable `InvalidToolInput`.
     */
    runTool: async (raw: RunToolInput): Promise<ToolResult> => {
      const parsed = RunToolInputSchema.safeParse(raw);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: 'InvalidToolInput',
          message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
          nonRetryable: true,
        });
      }
      const { workspace, name, input, allowedTools } = parsed.data;
      const ctx = Context.current();
      // Long commands must keep heartbeating, or the heartbeat timeout would fail a healthy activity.
      const heartbeat = new TurnHeartbeat(ctx, nudges);
      const beat = setInterval(() => heartbeat.beat({ tool: name }), HEARTBEAT_MS);
      const started = Date.now();
      try {
        const result = await executeTool(name, input, {
          workspace,
          signal: ctx.cancellationSignal,
          sandbox,
          allowedTools,
        });
        logger.info(
          { tool: name, ok: result.ok, error: result.error, ms: Date.now() - started },
          'tool call',
        );
        return result;
      } finally {
        clearInterval(beat);
        heartbeat.stop();
      }
    },
  };
}

export type ToolActivities = ReturnType<typeof createToolActivities>;
