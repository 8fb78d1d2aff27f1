/** Exact listings of a folder, for tests that check a restore byte for byte. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

/**
 * Every entry under `root` with its type, full mode and content hash (symlinks by target), sorted.
 * Top-level entries named in `skip` are left out (by default the workspace's own root `.git` and
 * `.orchestrator/`, which hold the user's history and ours, not the workspace's files).
 */
export function exactListing(root: string, skip: readonly string[] = ['.git', '.orchestrator']): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip.includes(r)) continue;
      const full = path.join(root, r);
      const st = fs.lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`l ${r} -> ${fs.readlinkSync(full)}`);
      else if (st.isDirectory()) {
        out.push(`d ${r} ${mode}`);
        walk(r);
      } else out.push(`f ${r} ${mode} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
    }
  };
  walk('');
  return out.sort();
}

/** Writes `rel` under `root` (parents made), with `mode` when given. */
export function writeIn(root: string, rel: string, content: string | Buffer, mode?: number): void {
  const full = path.join(root, rel);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, content);
  if (mode !== undefined) fs.chmodSync(full, mode);
}

/**
 * The tree a full `git add --all` of the workspace `ws` makes now, in a private index under `scratch`:
 * what every snapshot of the shadow repository `gitDir` must record, however it staged.
 */
export async function fullGitTree(ws: string, gitDir: string, scratch: string): Promise<string> {
  const index = path.join(scratch, 'reference.index');
  fs.rmSync(index, { force: true });
  const env = { GIT_INDEX_FILE: index, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
  const base = [`--git-dir=${gitDir}`, `--work-tree=${ws}`];
  await execa('git', [...base, 'add', '--all', '--force', '--', '.', ':(exclude).orchestrator'], {
    cwd: ws,
    env,
  });
  return (await execa('git', [...base, 'write-tree'], { cwd: ws, env })).stdout.trim();
}

/**
 * Waits until everything written so far is older than git's racy window (`racyMs`, or `coarseMs` on a
 * file system with whole-second times, probed in `scratch`): a condition, not a guess.
 */
export async function settleTimestamps(scratch: string, racyMs: number, coarseMs: number): Promise<void> {
  const probe = path.join(scratch, 'probe');
  fs.writeFileSync(probe, '');
  const fine = fs.statSync(probe, { bigint: true }).ctimeNs % 1_000_000_000n !== 0n;
  const until = Date.now() + (fine ? racyMs : coarseMs) + 50;
  while (Date.now() < until) await new Promise((r) => setTimeout(r, until - Date.now()));
}
