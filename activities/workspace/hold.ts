/**
 * Which run holds a workspace: `<workspace>/.orchestrator/run.lock` names it. The client writes it before
 * it starts a run or a team (after checking with the server that the run named there, if any, has ended),
 * and `initWorkspace` writes it again from inside the run (a fork's workspace only exists from then on).
 * The file alone never decides: a hold counts only while the server says the run is open, so a crashed
 * worker or a terminated run cannot leave a workspace locked (src/workspace-hold.ts).
 *
 * `.orchestrator/.gitignore` (`*`) keeps the orchestrator's own state out of the user's `git status`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { STATE_DIR } from './git';

export const HOLD_FILE = 'run.lock';

export interface WorkspaceHold {
  runId: string;
  kind: 'run' | 'team';
  namespace?: string;
  since: string;
}

export function holdPath(workspace: string): string {
  return path.join(workspace, STATE_DIR, HOLD_FILE);
}

const STATE_IGNORE = '# orchestrator state: never part of your repository\n*\n';

/**
 * Creates `.orchestrator/` with its `.gitignore`, so that a user's repository never shows it. A
 * `.gitignore` without that content (left empty by a worker killed between creating and writing it) is
 * written again: its content is fixed, so writing it over loses nothing.
 */
export async function ensureStateDir(workspace: string): Promise<string> {
  const dir = path.join(workspace, STATE_DIR);
  await fs.mkdir(dir, { recursive: true });
  const ignore = path.join(dir, '.gitignore');
  try {
    await fs.writeFile(ignore, STATE_IGNORE, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    if ((await fs.readFile(ignore, 'utf8')) !== STATE_IGNORE) await fs.writeFile(ignore, STATE_IGNORE);
  }
  return dir;
}

/** The hold recorded in a workspace, if any (an unreadable file counts as none). */
export async function readHold(workspace: string): Promise<WorkspaceHold | undefined> {
  try {
    const h = JSON.parse(await fs.readFile(holdPath(workspace), 'utf8')) as Partial<WorkspaceHold>;
    return typeof h.runId === 'string' && h.runId
      ? {
          runId: h.runId,
          kind: h.kind === 'team' ? 'team' : 'run',
          namespace: h.namespace,
          since: h.since ?? '',
        }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Records `hold` (atomically: a reader never sees half a file). */
export async function writeHold(workspace: string, hold: WorkspaceHold): Promise<void> {
  await ensureStateDir(workspace);
  const file = holdPath(workspace);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(hold) + '\n');
  await fs.rename(tmp, file);
}
