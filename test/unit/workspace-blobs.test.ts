/**
 * Reading blobs for a restore on two threads (activities/workspace/blobs.ts): every blob reaches the
 * restore once, byte for byte what git stored, whichever thread read it; a failure on either thread fails
 * the read (the restore then falls back to git's), and a helper that did not finish its job is never lent
 * again. And a restore of a large tree, where the helper takes part, is still exact.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { restoreWorkspace, shadowGitDir, snapshotWorkspace } from '../../activities/workspace';
import { eachBlob, HELPER_MIN_BLOBS, lendHelper } from '../../activities/workspace/blobs';
import { isBigTree } from '../../activities/workspace/exact';
import { exactListing } from '../harness/tree';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-blobs-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A git repository holding `n` files of different sizes (some past the reader's 64 KiB buffer). */
function repoWith(n: number): { gitDir: string; ids: string[]; contents: Map<string, Buffer> } {
  const root = path.join(tmp, 'repo');
  fs.mkdirSync(root);
  execFileSync('git', ['init', '-q', root]);
  for (let i = 0; i < n; i++) {
    const size = i % 50 === 7 ? 200_000 + i : 1 + ((i * 7919) % 20_000);
    fs.writeFileSync(path.join(root, `f${i}`), Buffer.alloc(size, `line ${i} of some text\n`));
  }
  execFileSync('git', ['add', '-A'], { cwd: root });
  const ids = execFileSync('git', ['ls-files', '-s'], { cwd: root, encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[1]!);
  const contents = new Map(
    ids.map((id) => [id, execFileSync('git', ['cat-file', 'blob', id], { cwd: root, maxBuffer: 1 << 24 })]),
  );
  return { gitDir: path.join(root, '.git'), ids, contents };
}

/**
 * With `withHelper`, each blob handed over holds this thread ~2 ms, as writing a file does: the helper, once
 * online, then gets its turn to claim blobs even on a loaded machine (without it this thread read all 192
 * of them before a CI run's helper was scheduled at all).
 */
async function readAll(gitDir: string, ids: string[], withHelper: boolean) {
  const helper = withHelper ? lendHelper() : undefined;
  if (withHelper) expect(helper).toBeDefined();
  // Online first, so that it takes part (a booting helper leaves a short list to this thread).
  await helper?.online;
  const seen = new Map<number, Buffer>();
  let byHelper = 0;
  try {
    byHelper = await eachBlob(gitDir, ids, helper, (i, content) => {
      expect(seen.has(i)).toBe(false);
      if (withHelper) for (const until = performance.now() + 2; performance.now() < until;);
      // Kept as a copy: the callback owns the content only while it runs.
      seen.set(i, Buffer.from(content));
    });
  } finally {
    helper?.giveBack();
  }
  return { seen, byHelper };
}

describe('eachBlob', () => {
  it('hands every blob over once, byte for byte, with and without the helper', async () => {
    const { gitDir, ids, contents } = repoWith(3 * HELPER_MIN_BLOBS);
    for (const withHelper of [false, true]) {
      const { seen, byHelper } = await readAll(gitDir, ids, withHelper);
      expect(seen.size).toBe(ids.length);
      if (withHelper) expect(byHelper).toBeGreaterThan(0);
      else expect(byHelper).toBe(0);
      for (const [i, content] of seen) expect(content.equals(contents.get(ids[i]!)!)).toBe(true);
    }
  });

  it('fails when either thread meets an object that is not a blob or not there, and lends a new helper after', async () => {
    const { gitDir, ids } = repoWith(2 * HELPER_MIN_BLOBS);
    const tree = execFileSync('git', ['--git-dir', gitDir, 'write-tree'], { encoding: 'utf8' }).trim();
    // Bad ids early (taken by this thread) and late (most likely by the helper).
    for (const bad of [tree, '0'.repeat(40)]) {
      for (const at of [0, ids.length - 1]) {
        const list = [...ids];
        list.splice(at, 0, bad);
        await expect(readAll(gitDir, list, true)).rejects.toThrow(/not a blob|ENOENT/);
      }
    }
    // The helper that failed was ended; the next one reads its share again.
    const { seen, byHelper } = await readAll(gitDir, ids, true);
    expect(seen.size).toBe(ids.length);
    expect(byHelper).toBeGreaterThan(0);
  });

  it('lends the helper to one restore at a time', () => {
    const first = lendHelper();
    expect(first).toBeDefined();
    expect(lendHelper()).toBeUndefined();
    first!.giveBack();
    const again = lendHelper();
    expect(again?.thread).toBe(first!.thread);
    again!.giveBack();
  });

  it('keeps the helper for the next restore after a job it finished, whoever read the last blob', async () => {
    const { gitDir, ids } = repoWith(HELPER_MIN_BLOBS);
    const first = lendHelper()!;
    first.giveBack();
    for (let round = 0; round < 5; round++) await readAll(gitDir, ids, true);
    const after = lendHelper()!;
    after.giveBack();
    expect(after.thread).toBe(first.thread);
  });
});

describe('a process with nothing else to do', () => {
  it('stays up until the helper has sent its last blob (a 60 MB one among them)', () => {
    // Found by hand: with the helper unref'd while lent, a process waiting only on its messages (a CLI, a
    // script) exited in the middle of the read, its await never settled.
    const { gitDir, ids } = repoWith(HELPER_MIN_BLOBS);
    const root = path.dirname(gitDir);
    fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(60 * 1024 * 1024, 'a big blob '));
    execFileSync('git', ['add', 'big'], { cwd: root });
    const big = execFileSync('git', ['rev-parse', ':big'], { cwd: root, encoding: 'utf8' }).trim();
    const script = `
      import { eachBlob, lendHelper } from './activities/workspace/blobs.ts';
      const helper = lendHelper();
      await helper.online;
      let bytes = 0;
      const ids = ${JSON.stringify([...ids, big])};
      await eachBlob(${JSON.stringify(gitDir)}, ids, helper, (_i, content) => (bytes += content.length));
      helper.giveBack();
      console.log(bytes);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      encoding: 'utf8',
    });
    const smallBytes = ids.reduce(
      (n, id) => n + Number(execFileSync('git', ['cat-file', '-s', id], { cwd: root, encoding: 'utf8' })),
      0,
    );
    expect(Number(out.trim())).toBe(smallBytes + 60 * 1024 * 1024);
  });
});

describe('a restore of a large tree, the helper reading beside it', () => {
  it('is exact after hundreds of changed, removed and added files', async () => {
    const ws = path.join(tmp, 'ws');
    for (let i = 0; i < 600; i++) {
      const file = path.join(ws, `src/d${i % 12}/f${i}.txt`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, `file ${i}\n`.repeat(1 + (i % 300)));
    }
    const { commit } = await snapshotWorkspace({ workspace: ws, message: 'cp' });
    const before = exactListing(ws);
    // A second checkpoint of the same tree: its scan marks the tree large, as a run's checkpoints do.
    await snapshotWorkspace({ workspace: ws, message: 'cp again' });
    expect(isBigTree(ws)).toBe(true);
    for (let i = 0; i < 600; i += 2)
      fs.writeFileSync(path.join(ws, `src/d${i % 12}/f${i}.txt`), `changed ${i}\n`);
    for (let i = 1; i < 600; i += 10) fs.rmSync(path.join(ws, `src/d${i % 12}/f${i}.txt`));
    fs.writeFileSync(path.join(ws, 'src/new.txt'), 'new\n');
    await restoreWorkspace({ workspace: ws, commit });
    expect(exactListing(ws)).toEqual(before);
    expect(fs.existsSync(shadowGitDir(ws))).toBe(true);
  });
});
