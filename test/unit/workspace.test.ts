import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  initWorkspace,
  materializeCheckpoint,
  restoreWorkspace,
  shadowGitDir,
  snapshotWorkspace,
  WorkspaceError,
} from '../../activities/workspace';
import { scanWorkspace, scanWorkspaceWithNode } from '../../activities/workspace/exact';
import { exactListing } from '../harness/tree';

/**
 * A listing of the whole tree that changes when any byte, executable bit, symlink target or (empty)
 * directory changes. `.orchestrator/` at the root and `.git` dirs are left out, as snapshots leave them out.
 */
function treeListing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const full = path.join(root, r);
      if (e.name === '.git' || r === '.orchestrator') continue;
      if (e.isSymbolicLink()) out.push(`l ${r} -> ${fs.readlinkSync(full)}`);
      else if (e.isDirectory()) {
        out.push(`d ${r}`);
        walk(r);
      } else {
        const exec = (fs.statSync(full).mode & 0o111) !== 0 ? 'x' : '-';
        out.push(`f ${r} ${exec} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
      }
    }
  };
  walk('');
  return out.sort();
}

/** Every file under a directory with its hash: proves a directory was not modified at all. */
function dirDigest(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const full = path.join(e.parentPath, e.name);
      return `${path.relative(dir, full)} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`;
    })
    .sort();
}

const userGitEnv = {
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'user',
  GIT_AUTHOR_EMAIL: 'user@example.com',
  GIT_COMMITTER_NAME: 'user',
  GIT_COMMITTER_EMAIL: 'user@example.com',
};
const userGit = (cwd: string, ...args: string[]) => execa('git', args, { cwd, env: userGitEnv });

let tmp: string;
let ws: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-test-'));
  ws = path.join(tmp, 'ws');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const write = (rel: string, content: string | Buffer, mode?: number) => {
  const full = path.join(ws, rel);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, content);
  if (mode !== undefined) fs.chmodSync(full, mode);
};

/** A workspace with text, binary, executable, dot, ignored and nested files, a symlink and empty dirs. */
function populate() {
  write('README.md', '# hello\r\nwindows line ending kept\r\n');
  write('src/a.ts', 'export const a = 1;\n');
  write('src/deep/nested/b.ts', 'export const b = 2;\n');
  write('bin/run.sh', '#!/bin/sh\necho run\n', 0o755);
  write('assets/blob.bin', Buffer.from([0, 1, 2, 255, 254, 0, 10, 13, 10, 0]));
  write('.env', 'SECRET=ignored-but-kept\n');
  write('.gitignore', '.env\ndist/\n');
  write('dist/out.js', 'built\n');
  fs.mkdirSync(path.join(ws, 'empty/inner'), { recursive: true });
  fs.mkdirSync(path.join(ws, 'logs'), { recursive: true });
  fs.symlinkSync('src/a.ts', path.join(ws, 'link-to-a'));
}

describe('snapshot and restore', () => {
  it('restores the exact tree after adds, changes, deletes, chmods and binary edits', async () => {
    await initWorkspace({ workspace: ws });
    populate();
    const before = treeListing(ws);
    const { commit } = await snapshotWorkspace({ workspace: ws, message: 'CP1 post-planning' });
    expect(commit).toMatch(/^[0-9a-f]{40}$/);

    write('src/a.ts', 'export const a = 42;\n'); // changed
    fs.rmSync(path.join(ws, 'src/deep'), { recursive: true }); // deleted dir
    fs.rmSync(path.join(ws, 'README.md')); // deleted file
    write('new/file.txt', 'created later\n'); // added
    write('dist/extra.js', 'ignored and created later\n'); // added, .gitignore'd
    write('.env', 'SECRET=changed\n'); // changed, .gitignore'd
    fs.chmodSync(path.join(ws, 'bin/run.sh'), 0o644); // lost exec bit
    fs.chmodSync(path.join(ws, 'src/a.ts'), 0o755); // gained exec bit
    write('assets/blob.bin', Buffer.from([0, 1, 2, 3])); // binary change
    fs.rmSync(path.join(ws, 'empty'), { recursive: true }); // empty dirs gone
    fs.mkdirSync(path.join(ws, 'created-empty')); // empty dir added
    fs.rmSync(path.join(ws, 'logs'), { recursive: true });
    write('logs', 'now a file\n'); // dir became a file
    fs.unlinkSync(path.join(ws, 'link-to-a'));
    fs.symlinkSync('README.md', path.join(ws, 'link-to-a')); // symlink retargeted
    expect(treeListing(ws)).not.toEqual(before);

    await restoreWorkspace({ workspace: ws, commit });
    expect(treeListing(ws)).toEqual(before);
    expect(fs.readFileSync(path.join(ws, 'README.md'), 'utf8')).toBe(
      '# hello\r\nwindows line ending kept\r\n',
    );
  });

  it('moves back and forth between checkpoints and keeps every one reachable', async () => {
    write('plan.md', 'v1\n');
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const l1 = treeListing(ws);
    write('plan.md', 'v2\n');
    write('src/x.ts', 'x\n');
    const cp2 = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    const l2 = treeListing(ws);

    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(treeListing(ws)).toEqual(l1);
    write('other.md', 'after rollback\n');
    const cp3 = await snapshotWorkspace({ workspace: ws, message: 'CP3' });
    await restoreWorkspace({ workspace: ws, commit: cp2.commit });
    expect(treeListing(ws)).toEqual(l2);
    await restoreWorkspace({ workspace: ws, commit: cp3.commit.slice(0, 12) });
    expect(fs.readFileSync(path.join(ws, 'other.md'), 'utf8')).toBe('after rollback\n');
    expect(fs.existsSync(path.join(ws, 'src/x.ts'))).toBe(false);
  });

  it('restores exactly when the tree drifted from what was last staged (paths swapped kind, same-size edits)', async () => {
    write('keep.txt', 'aaaa');
    write('a', 'file a\n');
    write('d/x', 'x\n');
    write('gone.txt', 'g\n');
    const cp1 = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const l1 = treeListing(ws);
    fs.rmSync(path.join(ws, 'a'));
    fs.rmSync(path.join(ws, 'd'), { recursive: true });
    fs.rmSync(path.join(ws, 'gone.txt'));
    write('late.txt', 'late\n');
    const cp2 = await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    const l2 = treeListing(ws);

    // Changes the index (staged at CP2) knows nothing about.
    write('a/inner.txt', 'a is a directory now\n');
    write('d', 'd is a file now\n');
    write('gone.txt', 'back, with other content\n');
    write('keep.txt', 'bbbb'); // same size, same second: only the content tells
    write('late.txt', 'changed\n');
    write('ro/f.txt', 'in a read-only dir\n');
    fs.chmodSync(path.join(ws, 'ro'), 0o555);
    await restoreWorkspace({ workspace: ws, commit: cp1.commit });
    expect(treeListing(ws)).toEqual(l1);
    expect(fs.readFileSync(path.join(ws, 'keep.txt'), 'utf8')).toBe('aaaa');

    write('a', 'drift again\n');
    write('d/x', 'y\n');
    await restoreWorkspace({ workspace: ws, commit: cp2.commit });
    expect(treeListing(ws)).toEqual(l2);
  });

  it('commits even when nothing changed', async () => {
    write('a.txt', 'a\n');
    const one = await snapshotWorkspace({ workspace: ws, message: 'one' });
    const two = await snapshotWorkspace({ workspace: ws, message: 'two' });
    expect(two.commit).not.toBe(one.commit);
    expect(two.tree).toBe(one.tree);
    // Each snapshot's parent is the one before (HEAD is read from its ref file, without a git process).
    const parent = await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'rev-parse', `${two.commit}^`]);
    expect(parent.stdout.trim()).toBe(one.commit);
  });

  it('snapshots an empty workspace and restores it to empty', async () => {
    const { commit } = await snapshotWorkspace({ workspace: ws, message: 'empty' });
    write('a/b.txt', 'b\n');
    await restoreWorkspace({ workspace: ws, commit });
    expect(treeListing(ws)).toEqual([]);
  });

  it("never touches the user's own .git or the state dir", async () => {
    write('app.js', 'console.log(1);\n');
    await userGit(ws, 'init', '-q');
    await userGit(ws, 'add', 'app.js');
    await userGit(ws, 'commit', '-q', '-m', 'user commit');
    const gitBefore = dirDigest(path.join(ws, '.git'));
    const headBefore = (await userGit(ws, 'rev-parse', 'HEAD')).stdout;

    const { commit } = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    write('.orchestrator/runs/keep.json', '{"kept":true}\n');
    write('app.js', 'changed\n');
    write('extra.js', 'extra\n');
    await restoreWorkspace({ workspace: ws, commit });

    expect(dirDigest(path.join(ws, '.git'))).toEqual(gitBefore);
    expect((await userGit(ws, 'rev-parse', 'HEAD')).stdout).toBe(headBefore);
    expect((await userGit(ws, 'log', '--format=%s')).stdout).toBe('user commit');
    expect(fs.readFileSync(path.join(ws, '.orchestrator/runs/keep.json'), 'utf8')).toBe('{"kept":true}\n');
    expect(fs.readFileSync(path.join(ws, 'app.js'), 'utf8')).toBe('console.log(1);\n');
    expect(fs.existsSync(path.join(ws, 'extra.js'))).toBe(false);
    // The shadow repository holds the user's files but never the user's git dir or our state.
    const files = (
      await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'ls-tree', '-r', '--name-only', commit])
    ).stdout.split('\n');
    expect(files).toEqual(['app.js']);
  });

  it('initWorkspace creates the folder and is idempotent', async () => {
    const first = await initWorkspace({ workspace: path.join(ws, 'a/b') });
    const second = await initWorkspace({ workspace: path.join(ws, 'a/b') });
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(fs.readFileSync(path.join(first.gitDir, 'info/exclude'), 'utf8')).toContain('/.orchestrator/');
  });

  it('rejects unknown commits and non-hash input', async () => {
    write('a', 'a');
    await snapshotWorkspace({ workspace: ws, message: 'x' });
    for (const commit of ['0123456789abcdef0123456789abcdef01234567', '--output=/tmp/x', 'HEAD']) {
      const err = await restoreWorkspace({ workspace: ws, commit }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkspaceError);
      expect((err as WorkspaceError).type).toBe('UnknownCommit');
    }
    const none = await restoreWorkspace({ workspace: path.join(tmp, 'nope'), commit: 'abcd' }).catch(
      (e: unknown) => e,
    );
    expect((none as WorkspaceError).type).toBe('WorkspaceNotInitialized');
  });

  it('serializes concurrent snapshots of one workspace', async () => {
    write('a.txt', 'a\n');
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => {
        write(`f${i}.txt`, `${i}\n`);
        return snapshotWorkspace({ workspace: ws, message: `snap ${i}` });
      }),
    );
    expect(new Set(results.map((r) => r.commit)).size).toBe(6);
    const log = await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'rev-list', '--count', 'HEAD']);
    expect(log.stdout).toBe('6');
    await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'fsck', '--strict']);
  });

  it('waits for an index.lock held by another process, and removes a stale one', async () => {
    write('a.txt', 'a\n');
    await snapshotWorkspace({ workspace: ws, message: 'first' });
    const lock = path.join(shadowGitDir(ws), 'index.lock');

    // A live process naming this repository's git dir holds the lock (as a running git would); the
    // lock goes when it ends, and the snapshot must have waited for that rather than removed the lock.
    // Each snapshot below stages through git: without the stat cache (a first staging, or after a restore)
    // git needs the index and its lock; a few changed files under a valid cache never touch the index.
    const cache = path.join(shadowGitDir(ws), 'orchestrator', 'index-stat');
    write('b.txt', 'b\n');
    fs.writeFileSync(lock, '');
    fs.rmSync(cache);
    const holder = execa('sh', ['-c', 'sleep 0.5', 'sh', `--git-dir=${shadowGitDir(ws)}`]);
    const released = holder.then(() => fs.rmSync(lock));
    const held = await snapshotWorkspace({ workspace: ws, message: 'waited' });
    await released;
    expect(held.commit).toMatch(/^[0-9a-f]{40}$/);

    // A fresh lock that no git process uses was left by a killed attempt: it is removed at once.
    write('c.txt', 'c\n');
    fs.writeFileSync(lock, '');
    fs.rmSync(cache);
    const orphaned = await snapshotWorkspace({ workspace: ws, message: 'orphaned lock' });
    expect(orphaned.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(fs.existsSync(lock)).toBe(false);

    write('d.txt', 'd\n');
    fs.writeFileSync(lock, '');
    fs.rmSync(cache);
    const old = new Date(Date.now() - 10 * 60_000);
    fs.utimesSync(lock, old, old);
    const stale = await snapshotWorkspace({ workspace: ws, message: 'stale lock' });
    expect(stale.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(fs.existsSync(lock)).toBe(false);
  });
});

describe('materializeCheckpoint (fork)', () => {
  it('gives the target exactly the tree of the commit, with its own shadow repository', async () => {
    populate();
    const cp = await snapshotWorkspace({ workspace: ws, message: 'CP2 post-architecture' });
    const listing = treeListing(ws);
    write('later.txt', 'after the checkpoint\n');
    const sourceIndex = dirDigest(shadowGitDir(ws)).filter((l) => l.startsWith('index '));

    const target = path.join(tmp, 'fork/ws');
    const res = await materializeCheckpoint({
      sourceWorkspace: ws,
      commit: cp.commit,
      targetWorkspace: target,
    });
    expect(treeListing(target)).toEqual(listing);
    expect(res.sourceCommit).toBe(cp.commit);
    expect(res.tree).toBe(cp.tree);
    // The source keeps its state, index included.
    expect(fs.existsSync(path.join(ws, 'later.txt'))).toBe(true);
    expect(dirDigest(shadowGitDir(ws)).filter((l) => l.startsWith('index '))).toEqual(sourceIndex);
    // No temp folders left next to the target.
    expect(fs.readdirSync(path.dirname(target))).toEqual(['ws']);

    // The fork's own snapshots and restores work.
    fs.writeFileSync(path.join(target, 'new.txt'), 'x');
    await restoreWorkspace({ workspace: target, commit: res.commit });
    expect(treeListing(target)).toEqual(listing);

    // A retry after success returns the same result instead of failing on the non-empty target.
    const again = await materializeCheckpoint({
      sourceWorkspace: ws,
      commit: cp.commit,
      targetWorkspace: target,
    });
    expect(again).toEqual(res);
  });

  it('accepts an existing empty target and rejects a non-empty one', async () => {
    write('a.txt', 'a\n');
    const cp = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await materializeCheckpoint({ sourceWorkspace: ws, commit: cp.commit, targetWorkspace: empty });
    expect(fs.readFileSync(path.join(empty, 'a.txt'), 'utf8')).toBe('a\n');

    const busy = path.join(tmp, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'mine.txt'), 'do not touch');
    const err = await materializeCheckpoint({
      sourceWorkspace: ws,
      commit: cp.commit,
      targetWorkspace: busy,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceError);
    expect((err as WorkspaceError).type).toBe('TargetNotEmpty');
    expect((err as Error).message).toContain('is not empty');
    expect(fs.readdirSync(busy)).toEqual(['mine.txt']);
  });
});

describe('exact restores: nested repositories and permission bits', () => {
  /** A workspace with a nested repository (two commits), one without commits, a 600 file and a 700 dir. */
  async function populateExact() {
    write('app.txt', 'app\n');
    write('vendor/lib/lib.txt', 'lib v1\n');
    write('vendor/lib/src/x.c', 'int x;\n');
    await userGit(path.join(ws, 'vendor/lib'), 'init', '-q');
    await userGit(path.join(ws, 'vendor/lib'), 'add', '.');
    await userGit(path.join(ws, 'vendor/lib'), 'commit', '-q', '-m', 'lib v1');
    write('fresh/notes.txt', 'no commit yet\n');
    await userGit(path.join(ws, 'fresh'), 'init', '-q');
    write('secret.key', 'key\n', 0o600);
    write('private/data.txt', 'data\n', 0o640);
    fs.chmodSync(path.join(ws, 'private'), 0o700);
    write('tool.sh', '#!/bin/sh\n', 0o750);
  }

  it('rollback brings back a nested repository (files and .git) and 600/640/700 modes exactly', async () => {
    await populateExact();
    const cp = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const before = exactListing(ws);
    expect(before).toContain(`f secret.key 600 ${createHash('sha256').update('key\n').digest('hex')}`);
    expect(before).toContain('d private 700');

    // Later work: the nested repository gets a new commit and new files, modes change.
    write('vendor/lib/lib.txt', 'lib v2\n');
    write('vendor/lib/added.txt', 'later\n');
    await userGit(path.join(ws, 'vendor/lib'), 'add', '.');
    await userGit(path.join(ws, 'vendor/lib'), 'commit', '-q', '-m', 'lib v2');
    fs.rmSync(path.join(ws, 'fresh/.git'), { recursive: true });
    await userGit(path.join(ws, 'private'), 'init', '-q'); // a repository where there was none
    fs.chmodSync(path.join(ws, 'secret.key'), 0o644);
    fs.chmodSync(path.join(ws, 'private'), 0o755);
    fs.chmodSync(path.join(ws, 'private/data.txt'), 0o600);
    fs.chmodSync(path.join(ws, 'tool.sh'), 0o700);
    write('new-repo/a.txt', 'a\n');
    await userGit(path.join(ws, 'new-repo'), 'init', '-q');
    await snapshotWorkspace({ workspace: ws, message: 'CP2' });
    expect(exactListing(ws)).not.toEqual(before);

    await restoreWorkspace({ workspace: ws, commit: cp.commit });
    expect(exactListing(ws)).toEqual(before);
    expect(fs.readFileSync(path.join(ws, 'vendor/lib/lib.txt'), 'utf8')).toBe('lib v1\n');
    // The nested repository works and is back at its own commit, with a clean status.
    const lib = path.join(ws, 'vendor/lib');
    expect((await userGit(lib, 'log', '--format=%s')).stdout).toBe('lib v1');
    expect((await userGit(lib, 'status', '--porcelain')).stdout).toBe('');
    expect(fs.existsSync(path.join(ws, 'fresh/.git/HEAD'))).toBe(true);

    // Work after the rollback snapshots again: the index (CP1), HEAD (CP2) and the file all differ.
    write('vendor/lib/lib.txt', 'lib v3\n');
    const cp3 = await snapshotWorkspace({ workspace: ws, message: 'CP3' });
    const shown = await execa('git', [
      `--git-dir=${shadowGitDir(ws)}`,
      'show',
      `${cp3.commit}:vendor/lib/lib.txt`,
    ]);
    expect(shown.stdout).toBe('lib v3');
  });

  it('a fork gets the nested repository and the modes exactly', async () => {
    await populateExact();
    const cp = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const before = exactListing(ws);
    write('vendor/lib/lib.txt', 'changed after the checkpoint\n');

    const target = path.join(tmp, 'fork');
    const res = await materializeCheckpoint({
      sourceWorkspace: ws,
      commit: cp.commit,
      targetWorkspace: target,
    });
    expect(exactListing(target)).toEqual(before);
    expect(res.tree).toBe(cp.tree);
    expect((await userGit(path.join(target, 'vendor/lib'), 'log', '--format=%s')).stdout).toBe('lib v1');
    expect((await userGit(path.join(target, 'vendor/lib'), 'status', '--porcelain')).stdout).toBe('');

    // And the fork's own rollbacks are exact too.
    fs.rmSync(path.join(target, 'vendor'), { recursive: true });
    fs.chmodSync(path.join(target, 'secret.key'), 0o666);
    await restoreWorkspace({ workspace: target, commit: res.commit });
    expect(exactListing(target)).toEqual(before);
  });

  it('stores nested files as plain files, never as a gitlink', async () => {
    await populateExact();
    const { commit } = await snapshotWorkspace({ workspace: ws, message: 'CP1' });
    const entries = (
      await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'ls-tree', '-r', commit])
    ).stdout.split('\n');
    expect(entries.filter((e) => e.startsWith('160000'))).toEqual([]);
    expect(entries.some((e) => e.endsWith('\tvendor/lib/src/x.c'))).toBe(true);
    expect(entries.some((e) => e.includes('.git/'))).toBe(false);
    await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'fsck', '--strict', '--no-dangling']);
  });

  it('finds with GNU find exactly what the Node walk finds: modes, empty dirs, nested repositories', async () => {
    await populateExact();
    populate();
    fs.mkdirSync(path.join(ws, 'sticky/empty'), { recursive: true });
    fs.chmodSync(path.join(ws, 'sticky'), 0o1777);
    write('odd name\nwith newline and  spaces', 'x', 0o4755);
    execFileSync('mkfifo', [path.join(ws, 'src/fifo')]);
    write('sub/.git', 'gitdir: ../elsewhere\n');
    fs.mkdirSync(path.join(ws, 'lnk'), { recursive: true });
    fs.symlinkSync('../vendor', path.join(ws, 'lnk/.git'));
    fs.mkdirSync(path.join(ws, '.git/objects'), { recursive: true });
    write('.orchestrator/junk/file', 'not scanned', 0o600);

    const viaNode = await scanWorkspaceWithNode(ws);
    const scan = await scanWorkspace(ws);
    expect(scan).toEqual(viaNode);
    // The comparison means something: every kind of finding is there.
    expect(scan.modes).toMatchObject({ sticky: '1777', 'odd name\nwith newline and  spaces': '4755' });
    expect(scan.emptyDirs).toEqual(expect.arrayContaining(['empty/inner', 'logs', 'sticky/empty']));
    expect(scan.nestedRepos.map((n) => `${n.path}:${n.git}`)).toEqual(
      expect.arrayContaining(['vendor/lib:dir', 'sub:file', 'lnk:symlink']),
    );
    expect(Object.keys(scan.modes).some((p) => p.startsWith('.orchestrator'))).toBe(false);
  });
});
