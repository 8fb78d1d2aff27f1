/**
 * The in-process walk of small trees (activities/workspace/exact.ts `printSmallTree`) prints what GNU
 * `find` prints for the same tree, record for record, so the stat cache's keys do not depend on which of
 * the two walked; past its size limit, or on anything it cannot read, it leaves the tree to `find`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { printSmallTree, SMALL_TREE_ENTRIES } from '../../activities/workspace/exact';

let ws: string;
beforeEach(() => {
  ws = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-small-'));
});
afterEach(() => fs.rmSync(ws, { recursive: true, force: true }));

/** What scanTree's `find` prints for the workspace, as a sorted list of records. */
async function findRecords(root: string): Promise<string[]> {
  const { stdout } = await execa(
    'find',
    [
      '.',
      '-mindepth',
      '1',
      '(',
      '-path',
      './.orchestrator',
      '-o',
      '-path',
      './.git',
      ')',
      '-prune',
      '-o',
      '-printf',
      '%y %m %i %s %T@ %C@ %P\\0',
    ],
    { cwd: root, env: { LC_ALL: 'C' } },
  );
  return stdout.split('\0').filter(Boolean).sort();
}

const records = (out: string | undefined) => (out ?? '').split('\0').filter(Boolean).sort();

describe('printSmallTree', () => {
  it('prints the records find prints: files, bits, symlinks, empty and nested folders, fifos, pruned state', async () => {
    fs.mkdirSync(path.join(ws, 'a/b/c'), { recursive: true });
    fs.mkdirSync(path.join(ws, 'empty'));
    fs.writeFileSync(path.join(ws, 'a/one.txt'), 'one\n');
    fs.writeFileSync(path.join(ws, 'a/b/two words.txt'), 'two');
    fs.writeFileSync(path.join(ws, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    fs.chmodSync(path.join(ws, 'empty'), 0o1777);
    fs.symlinkSync('a/one.txt', path.join(ws, 'link'));
    fs.symlinkSync('missing', path.join(ws, 'a/dangling'));
    await execa('mkfifo', [path.join(ws, 'pipe')]);
    // Nested repository: its .git is listed; the root's .git and state dir are not.
    fs.mkdirSync(path.join(ws, 'vendor/lib/.git'), { recursive: true });
    fs.writeFileSync(path.join(ws, 'vendor/lib/.git/HEAD'), 'ref: refs/heads/main\n');
    fs.mkdirSync(path.join(ws, '.git/objects'), { recursive: true });
    fs.mkdirSync(path.join(ws, '.orchestrator/shadow'), { recursive: true });
    fs.writeFileSync(path.join(ws, '.orchestrator/shadow/x'), 'x');
    const ours = records(printSmallTree(ws));
    expect(ours.length).toBeGreaterThan(10);
    expect(ours).toEqual(await findRecords(ws));
    expect(ours.some((r) => r.endsWith(' .orchestrator') || r.includes(' .git/'))).toBe(false);
  });

  it('leaves a tree past its limit to find', async () => {
    for (let i = 0; i < SMALL_TREE_ENTRIES; i++) fs.writeFileSync(path.join(ws, `f${i}`), '');
    expect(records(printSmallTree(ws))).toEqual(await findRecords(ws));
    fs.writeFileSync(path.join(ws, 'one-more'), '');
    expect(printSmallTree(ws)).toBeUndefined();
  });

  it('leaves an unreadable folder to find', () => {
    if (process.getuid?.() === 0) return; // root reads past file modes
    fs.mkdirSync(path.join(ws, 'closed'));
    fs.chmodSync(path.join(ws, 'closed'), 0);
    try {
      expect(printSmallTree(ws)).toBeUndefined();
    } finally {
      fs.chmodSync(path.join(ws, 'closed'), 0o755);
    }
  });
});
