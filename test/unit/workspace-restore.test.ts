/**
 * Restores by difference (activities/workspace/restore.ts): with a valid stat cache only what differs from
 * the checkpoint is written, without git, and the workspace still ends byte for byte, bit for bit, link for
 * link the checkpoint, whatever an agent did to it: kinds swapped, links retargeted, executable bits
 * flipped, a same-size rewrite with the old mtime put back (git's racy-clean case), fifos, new folders.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { restoreWorkspace, shadowGitDir, snapshotWorkspace } from '../../activities/workspace';
import { scanTree, unlockDirs } from '../../activities/workspace/exact';
import { stageAndList } from '../../activities/workspace/files';
import { withWorkspaceLock } from '../../activities/workspace/lock';
import { restoreChanged, statKey } from '../../activities/workspace/restore';
import { RACY_COARSE_MS, RACY_MS } from '../../activities/workspace/stage';
import { exactListing, fullGitTree, settleTimestamps, writeIn } from '../harness/tree';

let tmp: string;
let ws: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-restore-'));
  ws = path.join(tmp, 'ws');
  fs.mkdirSync(ws);
});
afterEach(() => {
  vi.restoreAllMocks();
  // A test may leave a read-only folder behind.
  execFileSync('chmod', ['-R', 'u+rwx', tmp]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const write = (rel: string, content: string | Buffer, mode?: number) => writeIn(ws, rel, content, mode);
const indexFile = () => path.join(shadowGitDir(ws), 'index');
const indexStamp = () => {
  const st = fs.statSync(indexFile(), { bigint: true });
  return `${st.ino}:${st.mtimeNs}:${st.size}`;
};

/** The tree a full `git add --all` of the work tree makes now. */
const fullTree = () => fullGitTree(ws, shadowGitDir(ws), tmp);

const settle = () => settleTimestamps(tmp, RACY_MS, RACY_COARSE_MS);

function populate(): void {
  for (let i = 0; i < 40; i++) write(`src/d${i % 4}/f${i}.txt`, `file ${i}\n`.repeat(1 + (i % 5)));
  write('bin/run.sh', '#!/bin/sh\necho run\n', 0o755);
  write('a', 'a is a file\n');
  write('d/x', 'd is a folder\n');
  write('same.txt', 'aaaa');
  write('bytes.bin', Buffer.from([0, 1, 2, 255, 0, 10, 13]));
  write('private.txt', 'secret\n', 0o600);
  fs.symlinkSync('src/d0/f0.txt', path.join(ws, 'link'));
  fs.symlinkSync('bin', path.join(ws, 'dirlink'));
  fs.mkdirSync(path.join(ws, 'empty/inner'), { recursive: true });
}

/** Everything an agent might do to the tree, the nasty cases included. */
function vandalize(): void {
  // Same size, and the old mtime put back: only ctime and content tell (git's racy-clean case).
  const same = path.join(ws, 'same.txt');
  const { atime, mtime } = fs.statSync(same);
  fs.writeFileSync(same, 'bbbb');
  fs.utimesSync(same, atime, mtime);
  fs.rmSync(path.join(ws, 'a'));
  write('a/inner.txt', 'a is a folder now\n'); // file replaced by a folder
  fs.rmSync(path.join(ws, 'd'), { recursive: true });
  write('d', 'd is a file now\n'); // folder replaced by a file
  fs.unlinkSync(path.join(ws, 'link'));
  fs.symlinkSync('bin/run.sh', path.join(ws, 'link')); // link retargeted
  fs.unlinkSync(path.join(ws, 'dirlink'));
  write('dirlink', 'a file where a link was\n');
  fs.chmodSync(path.join(ws, 'bin/run.sh'), 0o644); // exec bit lost
  fs.chmodSync(path.join(ws, 'src/d1/f1.txt'), 0o755); // exec bit gained
  fs.chmodSync(path.join(ws, 'private.txt'), 0o644);
  write('src/d2/f2.txt', 'changed\n');
  fs.rmSync(path.join(ws, 'src/d3'), { recursive: true }); // a whole folder gone
  write('new/deep/file.txt', 'created later\n'); // new files in new folders
  write('src/d0/extra.txt', 'untracked\n');
  fs.symlinkSync('/etc', path.join(ws, 'src/escape')); // a link out of the workspace
  fs.rmSync(path.join(ws, 'empty'), { recursive: true }); // an empty folder gone
  fs.mkdirSync(path.join(ws, 'created-empty/x'), { recursive: true }); // one created
  write('ro/f.txt', 'in a read-only folder\n');
  fs.chmodSync(path.join(ws, 'ro'), 0o555);
  fs.writeFileSync(path.join(ws, 'bytes.bin'), Buffer.from([9, 9]));
}

describe('restore by difference', () => {
  it('writes only what differs, without git, and ends exactly at the checkpoint', async () => {
    populate();
    await snapshotWorkspace({ workspace: ws, message: 'CP0' }); // the first staging: git, the cache built
    await settle();
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const l1 = exactListing(ws);
    await settle();
    vandalize();
    expect(exactListing(ws)).not.toEqual(l1);
    // A fifo, made after the listing (reading one would wait for a writer): git cannot store it, so it goes.
    execFileSync('mkfifo', [path.join(ws, 'src/d0/pipe')]);
    const untouched = fs.statSync(path.join(ws, 'src/d0/f4.txt'), { bigint: true }).mtimeNs;
    const before = indexStamp();

    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(exactListing(ws)).toEqual(l1);
    // No git process wrote the index (git's restore rewrites it), and an unchanged file was left alone.
    expect(indexStamp()).toBe(before);
    expect(fs.statSync(path.join(ws, 'src/d0/f4.txt'), { bigint: true }).mtimeNs).toBe(untouched);

    // The cache describes the restored tree: the next snapshot is the checkpoint's tree again, and exact.
    const again = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    expect(again.tree).toBe(cp1.tree);
    expect(again.tree).toBe(await fullTree());
    write('src/d0/after.txt', 'after the rollback\n');
    const cp3 = await snapshotWorkspace({ workspace: ws, message: 'CP3' });
    expect(cp3.tree).toBe(await fullTree());
  });

  it('moves back and forth between checkpoints under random changes, exact every time', async () => {
    populate();
    await snapshotWorkspace({ workspace: ws, message: 'CP0' });
    let seed = 11;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const cps: { commit: string; listing: string[] }[] = [];
    for (let step = 0; step < 6; step++) {
      for (let k = 0; k < 25; k++) {
        const rel = `src/d${rand(6)}/f${rand(60)}.txt`;
        const op = rand(6);
        if (op === 0) fs.rmSync(path.join(ws, rel), { force: true });
        else if (op === 1 && fs.existsSync(path.join(ws, rel))) fs.chmodSync(path.join(ws, rel), 0o755);
        else write(rel, `step ${step} ${k}\n`.repeat(1 + rand(4)));
      }
      const snap = await snapshotWorkspace({ workspace: ws, message: `CP${step + 1}` });
      cps.push({ commit: snap.commit, listing: exactListing(ws) });
    }
    for (const i of [2, 5, 0, 4, 1, 3, 3]) {
      // Work an agent did before the rollback, some of it in the same tick as the restore's walk.
      write(`src/d${rand(6)}/f${rand(60)}.txt`, `junk ${i}\n`);
      fs.rmSync(path.join(ws, `src/d${rand(6)}`), { recursive: true, force: true });
      await restoreWorkspace({ workspace: ws, commit: cps[i]!.commit });
      expect(exactListing(ws)).toEqual(cps[i]!.listing);
    }
    await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'fsck', '--strict', '--no-dangling'], {
      env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
    });
  });

  it('rewrites files in place, but never through a hard link, and with the bits git would give', async () => {
    write('grow.txt', 'the checkpoint has the longer content\n');
    write('shrink.txt', 'short\n');
    write('linked.txt', 'linked at the checkpoint\n');
    write('bits.txt', 'bits\n');
    await snapshotWorkspace({ workspace: ws, message: 'CP0' });
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const l1 = exactListing(ws);
    await settle();
    write('grow.txt', 'x\n');
    write('shrink.txt', 'a much longer content than the checkpoint had\n');
    // An agent links a file outside the workspace into it: a restore must not write through the link.
    const outside = path.join(tmp, 'outside.txt');
    fs.writeFileSync(outside, 'outside, must stay\n');
    fs.rmSync(path.join(ws, 'linked.txt'));
    fs.linkSync(outside, path.join(ws, 'linked.txt'));
    write('bits.txt', 'b\n', 0o600);
    const inode = fs.statSync(path.join(ws, 'grow.txt')).ino;

    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(exactListing(ws)).toEqual(l1);
    expect(fs.readFileSync(outside, 'utf8')).toBe('outside, must stay\n');
    expect(fs.statSync(outside).nlink).toBe(1);
    // Rewritten in place: the same file, its new content.
    expect(fs.statSync(path.join(ws, 'grow.txt')).ino).toBe(inode);
    const again = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    expect(again.tree).toBe(cp1.tree);
    expect(again.tree).toBe(await fullTree());
  });

  it("a restore's own stat keys are what find prints, so restored files are not staged again", async () => {
    write('x.txt', 'x\n');
    write('run.sh', '#!/bin/sh\n', 0o755);
    fs.symlinkSync('x.txt', path.join(ws, 'l'));
    const walked = await scanTree(ws);
    for (const f of walked.files ?? []) expect(await statKey(path.join(ws, f.path))).toBe(f.key);
    expect(walked.files).toHaveLength(3);

    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    write('x.txt', 'changed\n');
    await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    await settle();
    const dirty = await withWorkspaceLock(
      ws,
      async () => (await stageAndList(ws, { stage: false })).staged.dirty,
    );
    expect(dirty).toEqual([]);
  });

  it('a file rewritten behind the cache just after a restore (same size, same mtime) is restored again', async () => {
    populate();
    await snapshotWorkspace({ workspace: ws, message: 'CP0' });
    await settle();
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const l1 = exactListing(ws);
    await settle();
    write('src/d2/f2.txt', 'changed by the agent\n');
    write('same.txt', 'cccc');
    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(exactListing(ws)).toEqual(l1);
    // At once, within the racy window of the restore's own walk: the same size, the mtime put back. The
    // cache holds the keys the restore wrote; none of them may be trusted to be the checkpoint's yet.
    for (const rel of ['src/d2/f2.txt', 'same.txt', 'src/d1/f1.txt']) {
      const full = path.join(ws, rel);
      const { atime, mtime, size } = fs.statSync(full);
      fs.writeFileSync(full, 'z'.repeat(size));
      fs.utimesSync(full, atime, mtime);
    }
    expect(exactListing(ws)).not.toEqual(l1);
    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(exactListing(ws)).toEqual(l1);
    const again = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    expect(again.tree).toBe(cp1.tree);
    expect(again.tree).toBe(await fullTree());
  });

  it('a restore cut short half-way (as by a crash) and run again ends exact', async () => {
    populate();
    await snapshotWorkspace({ workspace: ws, message: 'CP0' });
    await settle();
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const l1 = exactListing(ws);
    await settle();
    vandalize();
    for (let i = 0; i < 40; i += 3) write(`src/d${i % 4}/f${i}.txt`, `rewritten ${i}\n`);
    // The restore by difference itself, as restoreWorkspace runs it, dying after a few files were written:
    // removals done, some files rewritten, the stat cache not yet patched.
    const walked = await scanTree(ws);
    await unlockDirs(ws, walked.scan);
    const writeSync = fs.writeSync.bind(fs) as (...a: unknown[]) => number;
    let writes = 0;
    vi.spyOn(fs, 'writeSync').mockImplementation((fd: number, ...rest: unknown[]) => {
      if (fd > 2 && ++writes > 3) throw new Error('killed');
      return writeSync(fd, ...rest);
    });
    await expect(
      restoreChanged({ gitDir: shadowGitDir(ws), root: ws, tree: cp1.tree, walked, emptyDirs: [] }),
    ).rejects.toThrow('killed');
    vi.restoreAllMocks();
    expect(writes).toBeGreaterThan(3);
    expect(exactListing(ws)).not.toEqual(l1);

    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(exactListing(ws)).toEqual(l1);
    const again = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    expect(again.tree).toBe(cp1.tree);
    expect(again.tree).toBe(await fullTree());
  });
});
