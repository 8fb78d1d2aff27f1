/**
 * Staging by changed paths (activities/workspace/stage.ts): every snapshot taken through the stat cache
 * records exactly the tree a full `git add --all` would, whatever the change (kind swaps, same-size edits,
 * bits, symlinks, deletions), and once the cache holds only what changed is handed to git.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { restoreWorkspace, shadowGitDir, snapshotWorkspace } from '../../activities/workspace';
import { stageAndList } from '../../activities/workspace/files';
import { isSettled, RACY_COARSE_MS, RACY_MS } from '../../activities/workspace/stage';
import { withWorkspaceLock } from '../../activities/workspace/lock';
import { fullGitTree, settleTimestamps, writeIn } from '../harness/tree';

let tmp: string;
let ws: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-stage-'));
  ws = path.join(tmp, 'ws');
  fs.mkdirSync(ws);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const write = (rel: string, content: string | Buffer, mode?: number) => writeIn(ws, rel, content, mode);

const git = (...args: string[]) =>
  execa('git', [`--git-dir=${shadowGitDir(ws)}`, `--work-tree=${ws}`, ...args], {
    cwd: ws,
    env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  });

/** The tree a full `git add --all` of the work tree makes now. */
const fullTree = () => fullGitTree(ws, shadowGitDir(ws), tmp);

/** What a checkpoint would hand to git now (changed since git last indexed the tree). */
async function dirty(): Promise<string[]> {
  return withWorkspaceLock(ws, async () => (await stageAndList(ws, { stage: false })).staged.dirty);
}

const settle = () => settleTimestamps(tmp, RACY_MS, RACY_COARSE_MS);

describe('staging by changed paths', () => {
  it('every snapshot records the tree a full git add would, across kind swaps, bits, links and deletes', async () => {
    write('keep.txt', 'aaaa');
    write('a', 'file a\n');
    write('d/x', 'x\n');
    write('bin/run.sh', '#!/bin/sh\n', 0o755);
    write('gone.txt', 'g\n');
    fs.symlinkSync('keep.txt', path.join(ws, 'link'));
    const steps: Array<() => void> = [
      () => {},
      () => {
        write('keep.txt', 'bbbb'); // same size, same second
        fs.rmSync(path.join(ws, 'a'));
        write('a/inner.txt', 'a is a directory now\n');
        fs.rmSync(path.join(ws, 'd'), { recursive: true });
        write('d', 'd is a file now\n');
      },
      () => {
        fs.chmodSync(path.join(ws, 'bin/run.sh'), 0o644);
        fs.chmodSync(path.join(ws, 'keep.txt'), 0o755);
        fs.unlinkSync(path.join(ws, 'link'));
        fs.symlinkSync('d', path.join(ws, 'link'));
        fs.rmSync(path.join(ws, 'gone.txt'));
        write('name with spaces\nand a newline', 'odd\n');
        write('private.txt', 'secret\n', 0o600);
      },
      () => {
        fs.unlinkSync(path.join(ws, 'link'));
        write('link', 'a file where a link was\n');
        write('keep.txt', 'cccc');
        fs.mkdirSync(path.join(ws, 'empty/dir'), { recursive: true });
      },
    ];
    for (const step of steps) {
      step();
      const snap = await snapshotWorkspace({ workspace: ws, message: 'step' });
      expect(snap.tree).toBe(await fullTree());
    }
    // The snapshots restore exactly as well (through the commit's modes and empty-dir records).
    const { stdout } = await git('rev-list', 'HEAD');
    expect(stdout.split('\n')).toHaveLength(steps.length);
  });

  it('hands git only the paths that changed once the cache holds, and still sees a same-size rewrite', async () => {
    for (let i = 0; i < 50; i++) write(`src/f${i}.txt`, `file ${i}\n`);
    await settle();
    await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    expect(await dirty()).toEqual([]);

    write('src/f3.txt', 'file 9\n'); // same size as before
    write('src/new.txt', 'new\n');
    fs.rmSync(path.join(ws, 'src/f7.txt'));
    expect(await dirty()).toEqual(['src/f3.txt', 'src/f7.txt', 'src/new.txt']);
    const cp2 = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    expect(cp2.tree).toBe(await fullTree());

    // Written shortly before the walk that recorded them (within the racy window or not, depending on
    // how loaded the machine is): once a later walk records them settled, nothing is dirty.
    await settle();
    await snapshotWorkspace({ workspace: ws, message: 'CP3' });
    expect(await dirty()).toEqual([]);
  });

  it('the snapshots after a restore are exact', async () => {
    write('a.txt', 'one\n');
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    write('a.txt', 'two\n');
    write('b.txt', 'b\n');
    await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    write('c.txt', 'c\n');
    const cp3 = await snapshotWorkspace({ workspace: ws, message: 'CP3' });
    expect(cp3.tree).toBe(await fullTree());
    expect((await git('ls-tree', '--name-only', cp3.tree)).stdout.split('\n')).toEqual(['a.txt', 'c.txt']);
  });

  it('writes blobs and trees itself for a few changes, git for many: every tree is what git makes, fsck clean', async () => {
    for (let i = 0; i < 300; i++) write(`src/d${i % 7}/f${i}.txt`, `file ${i}\n`);
    write('bin/tool', '#!/bin/sh\n', 0o755);
    await snapshotWorkspace({ workspace: ws, message: 'CP0' });
    const indexFile = path.join(shadowGitDir(ws), 'index');
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    for (let step = 1; step <= 12; step++) {
      const many = step % 4 === 0; // more changed paths than are stored in-process: git stages them
      const before = fs.statSync(indexFile).mtimeMs;
      for (let k = 0; k < (many ? 400 : 6); k++) {
        const rel = `src/d${rand(9)}/f${rand(400)}.txt`;
        const op = rand(5);
        if (op === 0) fs.rmSync(path.join(ws, rel), { force: true });
        else if (op === 1 && fs.existsSync(path.join(ws, rel))) fs.chmodSync(path.join(ws, rel), 0o755);
        else write(rel, `step ${step} ${k}\n`.repeat(1 + rand(3)));
      }
      if (step === 5) {
        fs.rmSync(path.join(ws, 'src/d1'), { recursive: true, force: true });
        write('src/d1', 'a file where a folder was\n');
        fs.symlinkSync('../bin/tool', path.join(ws, 'src/link'));
      }
      if (step === 6) {
        fs.rmSync(path.join(ws, 'src/d1'));
        write('src/d1/again.txt', 'a folder again\n');
        fs.rmSync(path.join(ws, 'src/link'));
        write('src/link', 'a file where a link was\n');
      }
      const snap = await snapshotWorkspace({ workspace: ws, message: `CP${step}` });
      expect(snap.tree).toBe(await fullTree());
      // A few changes never touch git's index (no git process staged them).
      if (!many && step !== 1) expect(fs.statSync(indexFile).mtimeMs).toBe(before);
    }
    await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'fsck', '--strict', '--no-dangling'], {
      env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
    });
  });

  it('trusts a recorded stat key only for files changed well before the walk that recorded it', () => {
    const walked = 1_000_000;
    const at = (ms: number) => ({ key: 'k', changedMs: ms });
    expect(isSettled('k', at(walked - RACY_MS - 1), walked, true)).toBe(true);
    // Changed within a tick of the walk: a rewrite right after it could keep the same key.
    expect(isSettled('k', at(walked - RACY_MS + 1), walked, true)).toBe(false);
    expect(isSettled('k', at(walked + 5), walked, true)).toBe(false);
    // Whole-second time stamps: a second's margin.
    expect(isSettled('k', at(walked - RACY_MS - 1), walked, false)).toBe(false);
    expect(isSettled('k', at(walked - RACY_COARSE_MS - 1), walked, false)).toBe(true);
    expect(isSettled('other', at(walked - RACY_COARSE_MS - 1), walked, true)).toBe(false);
  });
});
