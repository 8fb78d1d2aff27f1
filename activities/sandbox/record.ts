/**
 * Which confinement a run's agents got, recorded in the run's outputs folder (`sandbox.json`) by the
 * worker that ran them, so that `run status` tells what happened to this run rather than what the CLI's
 * own host would do. One agent that ran unconfined makes the whole run unconfined: `none` replaces
 * `bwrap`, never the other way round.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeSandbox, type SandboxState } from './index';

export const SANDBOX_FILE = 'sandbox.json';

export interface SandboxRecord {
  kind: 'bwrap' | 'none';
  /** The worker's one line ({@link describeSandbox}). */
  line: string;
}

/** What this process last recorded per run folder: one write per run, not one per turn. */
const recorded = new Map<string, SandboxRecord['kind']>();

/** Records `state` for the run whose outputs folder is `runDir` (best effort: a status line is not worth a failed turn). */
export function recordSandbox(runDir: string, state: SandboxState): void {
  if (recorded.get(runDir) === 'none' || recorded.get(runDir) === state.kind) return;
  try {
    const file = path.join(runDir, SANDBOX_FILE);
    const before = readSandboxRecord(runDir);
    if (before?.kind === 'none' || before?.kind === state.kind) {
      recorded.set(runDir, before.kind);
      return;
    }
    fs.mkdirSync(runDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const rec: SandboxRecord = { kind: state.kind, line: describeSandbox(state) };
    fs.writeFileSync(tmp, JSON.stringify(rec) + '\n');
    fs.renameSync(tmp, file);
    recorded.set(runDir, state.kind);
  } catch {
    // The outputs folder is gone or read-only: the worker's start line still says it.
  }
}

/** The recorded confinement of a run, if any agent has started. */
export function readSandboxRecord(runDir: string): SandboxRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(runDir, SANDBOX_FILE), 'utf8')) as Partial<SandboxRecord>;
    return (r.kind === 'bwrap' || r.kind === 'none') && typeof r.line === 'string'
      ? { kind: r.kind, line: r.line }
      : undefined;
  } catch {
    return undefined;
  }
}
