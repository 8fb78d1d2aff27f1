/**
 * The `script` agent backend: an argv array run in the workspace, with no shell unless argv says `sh -c`.
 * It makes the whole engine testable without a model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { z } from 'zod';
import type { Logger } from '../../src/logger';
import { signalGroup } from '../process-group';

export const ScriptTurnInputSchema = z.object({
  runId: z.string().min(1),
  /** File-safe agent id, used for the output file name. */
  agentId: z.string().min(1),
  workspace: z.string().startsWith('/'),
  command: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()).default({}),
  timeoutS: z.number().positive().default(600),
});
export type ScriptTurnInput = z.input<typeof ScriptTurnInputSchema>;

export interface ScriptTurnResult {
  ok: boolean;
  exitCode: number;
  /** The last lines of output (capped), for history; the full output is at outputRef. */
  summary: string;
  outputRef: string;
  durationMs: number;
}

const SUMMARY_CHARS = 600;
/** How long a cancelled or timed-out process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 3_000;

export function createScriptActivities(deps: {
  logger: Logger;
  outputsDir: string;
  baseEnv?: Record<string, string>;
}) {
  const { logger, outputsDir } = deps;
  return {
    /** Runs one script agent turn. Heartbeats every second; cancellation ends the whole process group. */
    async scriptTurn(raw: ScriptTurnInput): Promise<ScriptTurnResult> {
      const input = ScriptTurnInputSchema.parse(raw);
      const ctx = Context.current();
      const outDir = path.join(outputsDir, input.runId, 'agents');
      fs.mkdirSync(outDir, { recursive: true });
      const outputRef = path.join(outDir, `${input.agentId}.log`);
      const out = fs.createWriteStream(outputRef, { flags: 'a' });
      const started = Date.now();
      let tail = '';
      const log = logger.child({ runId: input.runId, agentId: input.agentId });
      log.info({ command: input.command, attempt: ctx.info.attempt }, 'script agent started');

      // A previous attempt whose worker died leaves its detached group running; end it before starting
      // again so that two copies of one agent never run at once.
      const previous = ctx.info.heartbeatDetails as { pid?: number } | undefined;
      if (ctx.info.attempt > 1 && typeof previous?.pid === 'number') {
        log.warn({ pid: previous.pid }, 'ending process group left by the previous attempt');
        signalGroup(previous.pid, 'SIGKILL');
      }

      const [file, ...args] = input.command as [string, ...string[]];
      // detached: the script gets its own process group, so cancellation can end it and its children.
      const child = execa(file, args, {
        cwd: input.workspace,
        env: { ...deps.baseEnv, ...input.env },
        detached: true,
        reject: false,
        all: true,
        stdin: 'ignore',
        buffer: false,
      });
      child.all?.on('data', (chunk: Buffer) => {
        out.write(chunk);
        tail = (tail + chunk.toString()).slice(-SUMMARY_CHARS);
      });
      const terminate = (why: string) => {
        log.warn({ pid: child.pid, why }, 'ending script process group');
        signalGroup(child.pid, 'SIGTERM');
        setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS).unref();
      };
      ctx.heartbeat({ pid: child.pid, elapsedMs: 0 });
      const beat = setInterval(
        () => ctx.heartbeat({ pid: child.pid, elapsedMs: Date.now() - started }),
        1_000,
      );
      const timer = setTimeout(() => terminate('timeout'), input.timeoutS * 1_000);
      const onCancel = () => terminate('cancelled');
      ctx.cancellationSignal.addEventListener('abort', onCancel);
      try {
        const result = await child;
        const durationMs = Date.now() - started;
        await new Promise<void>((r) => out.end(r));
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
        if (result.failed && result.exitCode === undefined) {
          const notFound = (result as { code?: string }).code === 'ENOENT';
          throw ApplicationFailure.create({
            type: notFound ? 'ScriptNotFound' : 'ScriptKilled',
            message: notFound
              ? `script program not found: ${file}`
              : `script ended by ${result.signal ?? 'error'}: ${result.shortMessage}`,
            nonRetryable: notFound,
          });
        }
        const exitCode = result.exitCode ?? -1;
        log.info({ exitCode, durationMs }, 'script agent finished');
        return { ok: exitCode === 0, exitCode, summary: tail.trim(), outputRef, durationMs };
      } finally {
        clearInterval(beat);
        clearTimeout(timer);
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
        if (!out.closed) out.end();
      }
    },
  };
}
