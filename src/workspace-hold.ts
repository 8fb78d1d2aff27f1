/**
 * One run per workspace. Before a run, fork or team starts, the client reads the workspace's hold
 * (`.orchestrator/run.lock`, activities/workspace/hold.ts) and asks the server whether the run named
 * there is still open. An open run keeps the workspace: the start is refused, naming that run and how to
 * stop it. A run that ended in any way (completed, failed, cancelled, terminated, timed out) or that the
 * server does not know holds nothing, whatever the file says, so a crash never leaves a workspace locked.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { readHold, writeHold, type WorkspaceHold } from '../activities/workspace/hold';

/** The workspace is held by an open run. */
export class WorkspaceBusyError extends Error {
  override readonly name = 'WorkspaceBusyError';
  constructor(
    message: string,
    readonly holder: WorkspaceHold,
  ) {
    super(message);
  }
}

/** Whether the server has `runId` open (its latest execution is running). */
export async function isRunOpen(client: Client, runId: string): Promise<boolean> {
  try {
    const d = await client.workflow.getHandle(runId).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

function stopHint(h: WorkspaceHold): string {
  return h.kind === 'team'
    ? `stop it with \`orchestrator team stop ${h.runId}\``
    : `stop it with \`temporal workflow cancel --workflow-id ${h.runId}\` (or \`temporal workflow terminate --workflow-id ${h.runId}\`)`;
}

/** Throws {@link WorkspaceBusyError} when an open run other than `except` holds the workspace. */
export async function ensureWorkspaceFree(client: Client, workspace: string, except?: string): Promise<void> {
  const held = await readHold(workspace);
  if (!held || held.runId === except) return;
  if (await isRunOpen(client, held.runId)) {
    const what = held.kind === 'team' ? 'team run' : 'run';
    throw new WorkspaceBusyError(
      `workspace ${workspace} is held by ${what} ${held.runId}, which is still running: wait for it to finish, ${stopHint(held)}, or choose another --workspace`,
      held,
    );
  }
}

/** Checks the workspace is free (see {@link ensureWorkspaceFree}) and records `runId` as its holder. */
export async function holdWorkspace(
  client: Client,
  workspace: string,
  hold: { runId: string; kind: 'run' | 'team' },
): Promise<void> {
  await ensureWorkspaceFree(client, workspace, hold.runId);
  await writeHold(workspace, {
    ...hold,
    namespace: client.options.namespace,
    since: new Date().toISOString(),
  });
}
