/**
 * Team agent directories: `<workspace>/.team/<id>/` with instructions.md, tasks.md and session.json,
 * the tasks an agent marks done, and the archive step that renames a finished agent's directory to
 * `<id>-completed/` (or `-failed/`). Every step is idempotent: a retried activity finds its own work done.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { formatZodIssues } from '../../config/errors';
import { issueCapability } from '../identity';
import type { Logger } from '../../src/logger';
import { SafeNameSchema } from '../../src/shared/ids';
import {
  agentDir,
  countTasks,
  messageVouchedQuery,
  MessageVouchRequestSchema,
  parseTasks,
  renderTasks,
  tasksFromInstructions,
  type TaskCounts,
  type TeamTask,
} from '../../src/shared/team';

/** The repository's bin/ (holds the `orchestrator` wrapper agents call). */
export const REPO_BIN_DIR = fileURLToPath(new URL('../../bin', import.meta.url));

const AbsPath = z.string().startsWith('/', 'must be an absolute path');
const AgentRef = z.object({
  id: SafeNameSchema,
  name: z.string().min(1),
  role: z.string().min(1),
  depth: z.number().int().nonnegative(),
  requestedBy: z.string().min(1),
});

export const PrepareTeamAgentInputSchema = z.object({
  runId: SafeNameSchema,
  workspace: AbsPath,
  outputsDir: AbsPath,
  agent: AgentRef,
  workflowId: z.string().min(1),
  backend: z.enum(['cli', 'script']),
  /** The generated persona (also the agent's appended system prompt). */
  persona: z.string(),
  /** What the requester asked this agent to do; its bullet lines become tasks.md. */
  instructions: z.string().min(1),
  sessionId: z.string().optional(),
  startedAt: z.string().min(1),
});
export type PrepareTeamAgentInput = z.input<typeof PrepareTeamAgentInputSchema>;

export interface PreparedTeamAgent {
  dir: string;
  /** Environment for the agent's process: `orchestrator` on PATH, the node to run it with, its dir. */
  env: Record<string, string>;
  tasks: TaskCounts;
}

const DirInputSchema = z.object({ dir: AbsPath });
const IssueCapabilityInputSchema = z.object({
  outputsDir: AbsPath,
  runId: z.string().min(1),
  agentId: AgentRef.shape.id,
});
const MarkTasksInputSchema = z.object({
  dir: AbsPath,
  task: z.string().min(1).optional(),
  all: z.boolean().optional(),
});
const ArchiveInputSchema = z.object({
  dir: AbsPath,
  outcome: z.enum(['completed', 'failed', 'stopped']),
  session: z.record(z.string(), z.unknown()).default({}),
});

export interface TasksResult {
  tasks: TeamTask[];
  counts: TaskCounts;
  /** No tasks.md (or no task lines): nothing to wait for. */
  missing: boolean;
}

export interface MarkTasksResult extends TasksResult {
  /** Set when the task named was not found. */
  unknown?: string;
}

function parseInput<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    throw ApplicationFailure.create({
      type: 'InvalidTeamInput',
      message: `${what}: ${formatZodIssues(r.error).join('; ')}`,
      nonRetryable: true,
    });
  }
  return r.data;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/** Writes via a temp file and rename, so a reader (or a crash) never sees half a file. */
async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
}

/**
 * Marks tasks completed in a tasks.md text, editing only the status of the matching lines (an agent's
 * other edits stay). `task` matches an id (`t2`) or a task's exact text.
 */
export function markTasksInText(
  text: string,
  which: { task?: string; all?: boolean },
): { text: string; tasks: TeamTask[]; unknown?: string } {
  const tasks = parseTasks(text);
  const wanted = which.task?.trim().toLowerCase();
  const target = which.all
    ? undefined
    : tasks.find((t) => t.id.toLowerCase() === wanted || t.text.toLowerCase() === wanted);
  if (!which.all && !target) return { text, tasks, unknown: which.task };
  let index = 0;
  const lines = text.split('\n').map((line) => {
    const parsed = parseTasks(line)[0];
    if (!parsed) return line;
    const task = tasks[index++];
    if (!task || (!which.all && task !== target)) return line;
    task.status = 'completed';
    return line.replace(/\[[^\]]*\]/, '[completed]');
  });
  return { text: lines.join('\n'), tasks };
}

export function createTeamActivities(deps: { logger: Logger; binDir?: string; nodePath?: string }) {
  const binDir = deps.binDir ?? REPO_BIN_DIR;
  const nodePath = deps.nodePath ?? process.execPath;

  async function readTasks(dir: string): Promise<TasksResult> {
    const text = await readText(path.join(dir, 'tasks.md'));
    const tasks = text === undefined ? [] : parseTasks(text);
    return { tasks, counts: countTasks(tasks), missing: tasks.length === 0 };
  }

  return {
    /**
     * Issues a team agent's capability (src/shared/identity): its secret goes to a 0600 file under
     * `<outputsDir>/<runId>/keys/`, and only the anchors (digests) come back into history. Idempotent.
     */
    async issueCapability(raw: {
      outputsDir: string;
      runId: string;
      agentId: string;
    }): Promise<{ file: string; teamAnchor: string; agentAnchor: string }> {
      const input = parseInput(IssueCapabilityInputSchema, raw, 'issueCapability');
      try {
        return await issueCapability(input);
      } catch (err) {
        throw ApplicationFailure.create({
          type: 'InvalidTeamInput',
          message: `issueCapability: ${(err as Error).message}`,
          nonRetryable: !(err as NodeJS.ErrnoException).code,
        });
      }
    },

    /**
     * Creates (or finds) the agent's directory: instructions.md and session.json are (re)written,
     * tasks.md only when missing so that progress survives a retry.
     */
    async prepareTeamAgent(raw: PrepareTeamAgentInput): Promise<PreparedTeamAgent> {
      const input = parseInput(PrepareTeamAgentInputSchema, raw, 'prepareTeamAgent');
      const dir = agentDir(input.workspace, input.agent.id);
      await fs.mkdir(dir, { recursive: true });
      const instructions = `${input.persona.trimEnd()}\n\n## Your assignment\n\n${input.instructions.trim()}\n`;
      await writeAtomic(path.join(dir, 'instructions.md'), instructions);
      const tasksFile = path.join(dir, 'tasks.md');
      if (!(await exists(tasksFile))) {
        await writeAtomic(tasksFile, renderTasks(input.agent, tasksFromInstructions(input.instructions)));
      }
      const transcript = path.join(
        input.outputsDir,
        input.runId,
        'agents',
        `${input.agent.id}.${input.backend === 'cli' ? 'jsonl' : 'log'}`,
      );
      const session = {
        runId: input.runId,
        agentId: input.agent.id,
        name: input.agent.name,
        role: input.agent.role,
        depth: input.agent.depth,
        requestedBy: input.agent.requestedBy,
        workflowId: input.workflowId,
        backend: input.backend,
        sessionId: input.sessionId,
        startedAt: input.startedAt,
        state: 'running',
        transcript,
      };
      await writeAtomic(path.join(dir, 'session.json'), JSON.stringify(session, null, 2) + '\n');
      const { counts } = await readTasks(dir);
      deps.logger.info({ runId: input.runId, agentId: input.agent.id, dir }, 'team agent prepared');
      return {
        dir,
        tasks: counts,
        env: {
          PATH: [binDir, process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'].join(path.delimiter),
          ORCHESTRATOR_NODE: nodePath,
          ORCHESTRATOR_AGENT_DIR: dir,
        },
      };
    },

    /** The tasks in an agent's tasks.md. */
    async readTeamTasks(raw: { dir: string }): Promise<TasksResult> {
      const { dir } = parseInput(DirInputSchema, raw, 'readTeamTasks');
      return readTasks(dir);
    },

    /** Marks one task (or all) completed in tasks.md; an unknown task comes back in `unknown`. */
    async markTeamTasks(raw: { dir: string; task?: string; all?: boolean }): Promise<MarkTasksResult> {
      const input = parseInput(MarkTasksInputSchema, raw, 'markTeamTasks');
      const file = path.join(input.dir, 'tasks.md');
      const text = (await readText(file)) ?? '';
      const out = markTasksInText(text, input);
      if (out.unknown === undefined && out.text !== text) await writeAtomic(file, out.text);
      return {
        tasks: out.tasks,
        counts: countTasks(out.tasks),
        missing: out.tasks.length === 0,
        unknown: out.unknown,
      };
    },

    /**
     * Records the outcome in session.json and, for `completed` and `failed`, renames the directory to
     * `<id>-<outcome>` (a stopped agent's directory stays where it is, for inspection). A directory
     * already archived (a retry) is returned as it is; a stale target from an earlier run is replaced.
     */
    async archiveTeamAgent(raw: {
      dir: string;
      outcome: 'completed' | 'failed' | 'stopped';
      session?: Record<string, unknown>;
    }): Promise<{ archivedTo?: string }> {
      const input = parseInput(ArchiveInputSchema, raw, 'archiveTeamAgent');
      const target = `${input.dir}-${input.outcome}`;
      if (!(await exists(input.dir))) {
        if (input.outcome !== 'stopped' && (await exists(target))) return { archivedTo: target };
        throw ApplicationFailure.create({
          type: 'AgentDirMissing',
          message: `archiveTeamAgent: ${input.dir} does not exist`,
          nonRetryable: true,
        });
      }
      const sessionFile = path.join(input.dir, 'session.json');
      let session: Record<string, unknown> = {};
      try {
        session = JSON.parse((await readText(sessionFile)) ?? '{}') as Record<string, unknown>;
      } catch {
        // An agent may have garbled its session.json; the outcome is rewritten in full below.
      }
      await writeAtomic(
        sessionFile,
        JSON.stringify({ ...session, ...input.session, state: input.outcome }, null, 2) + '\n',
      );
      if (input.outcome === 'stopped') return {};
      await fs.rm(target, { recursive: true, force: true });
      await fs.rename(input.dir, target);
      deps.logger.info({ dir: input.dir, archivedTo: target }, 'team agent archived');
      return { archivedTo: target };
    },

    /**
     * Whether a team agent's workflow has closed, as the server says, waiting up to `waitMs` for it to
     * close (an agent signals its end just before its workflow completes). Signal `agentEnded` carries no
     * proof (anything that reaches the server can send it), so a team asks this before it believes an
     * inherited agent ended. Read-only, safe to retry.
     */
    async agentWorkflowClosed(raw: { workflowId: string; waitMs: number }): Promise<{ closed: boolean }> {
      const input = parseInput(
        z.object({ workflowId: z.string().min(1).max(1000), waitMs: z.number().int().min(0).max(600_000) }),
        raw,
        'agentWorkflowClosed input',
      );
      const ctx = Context.current();
      const handle = ctx.client.workflow.getHandle(input.workflowId);
      const until = Date.now() + input.waitMs;
      // A few describes, a real agent's close is a moment after its signal: no long poll is left behind
      // when the claim was false and the agent runs on.
      for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
        try {
          const status = (await handle.describe()).status.name;
          if (status !== 'RUNNING') return { closed: true };
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return { closed: true }; // past retention: long over
          throw err;
        }
        if (Date.now() + pause > until) return { closed: false };
        ctx.heartbeat();
        await ctx.sleep(pause);
      }
    },

    /**
     * Whether a team delivered a message with this digest to agent `to` (query `messageVouched`): an
     * agent takes a `deliverMessage` into its inbox only when its team vouches for it, since anything that
     * reaches the server can send one naming any sender. A team that cannot answer: retried.
     */
    async messageVouched(raw: { teamId: string; to: string; digest: string }): Promise<boolean> {
      const { teamId, ...req } = parseInput(
        MessageVouchRequestSchema.extend({ teamId: z.string().min(1).max(1000) }).strict(),
        raw,
        'messageVouched input',
      );
      const answer: unknown = await Context.current()
        .client.workflow.getHandle(teamId)
        .query(messageVouchedQuery, req);
      return answer === true;
    },
  };
}

export type TeamActivities = ReturnType<typeof createTeamActivities>;
