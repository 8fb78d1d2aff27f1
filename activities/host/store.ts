/**
 * The checkpoint store: a folder every host reaches (ORCHESTRATOR_CHECKPOINT_STORE), holding one bare git
 * repository per run, `<store>/<runId>.git`. Each checkpoint commit of the run's shadow repository is
 * pushed there under `refs/checkpoints/<id>` (with the snapshot's extra objects, `refs/orchestrator/aux/*`,
 * see ../workspace/snapshot), so that when the run's host is lost another host can fetch them into a shadow
 * repository of its own and restore the last checkpoint byte for byte. Git sends only what the store lacks.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

/** The store's repository of one run. */
export function storeRepo(store: string, runId: string): string {
  return path.join(store, `${runId}.git`);
}

/** The ref a checkpoint is kept under in the store. */
export function checkpointRef(checkpoint: string): string {
  return `refs/checkpoints/${checkpoint}`;
}

const AUX_REFS = '+refs/orchestrator/aux/*:refs/orchestrator/aux/*';

function git(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => {
      if (err)
        reject(new Error(`git ${args.slice(0, 3).join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

/** Pushes checkpoint `checkpoint` (commit `commit` of `shadowGitDir`) to the run's store repository. */
export async function pushCheckpoint(args: {
  store: string;
  runId: string;
  shadowGitDir: string;
  checkpoint: string;
  commit: string;
}): Promise<{ repo: string }> {
  const repo = storeRepo(args.store, args.runId);
  const initialized = await fs.access(path.join(repo, 'HEAD')).then(
    () => true,
    () => false,
  );
  // `git init` of an existing repository changes nothing: two hosts racing here both succeed.
  if (!initialized) await git(['init', '--quiet', '--bare', repo]);
  await git([
    `--git-dir=${args.shadowGitDir}`,
    'push',
    '--quiet',
    '--force',
    repo,
    `${args.commit}:${checkpointRef(args.checkpoint)}`,
    AUX_REFS,
  ]);
  return { repo };
}

/**
 * Fetches every checkpoint of the run (and their extra objects) from the store into `shadowGitDir`; with
 * `checkpoint`, only that one (a fork takes one checkpoint of another run, not that run's others).
 */
export async function fetchCheckpoints(args: {
  store: string;
  runId: string;
  shadowGitDir: string;
  checkpoint?: string;
}): Promise<{ repo: string }> {
  const repo = storeRepo(args.store, args.runId);
  const refs = args.checkpoint
    ? `+${checkpointRef(args.checkpoint)}:${checkpointRef(args.checkpoint)}`
    : '+refs/checkpoints/*:refs/checkpoints/*';
  await git([`--git-dir=${args.shadowGitDir}`, 'fetch', '--quiet', '--no-tags', repo, refs, AUX_REFS]);
  return { repo };
}

/** Whether the store holds checkpoint `checkpoint` of run `runId` (as a commit). */
export async function storeHasCheckpoint(args: {
  store: string;
  runId: string;
  checkpoint: string;
}): Promise<boolean> {
  const repo = storeRepo(args.store, args.runId);
  try {
    await git([
      `--git-dir=${repo}`,
      'rev-parse',
      '--verify',
      '--quiet',
      `${checkpointRef(args.checkpoint)}^{commit}`,
    ]);
    return true;
  } catch {
    return false;
  }
}
