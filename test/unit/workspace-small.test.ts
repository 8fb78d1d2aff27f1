/**
 * Small files read with blocking calls (activities/workspace/small.ts): what is not a small regular file
 * is reported, never read (a fifo must not hold the event loop, a link is not followed), and long
 * stretches of blocking calls let the event loop turn. And the staging that uses it: a changed file
 * turned into a fifo or a link before it is stored is left out, without waiting.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { shadowGitDir, snapshotWorkspace } from '../../activities/workspace';
import { look, stageDirty } from '../../activities/workspace/stage';
import { pace, readSmallSync, SLICE_MS, SMALL_FILE_BYTES } from '../../activities/workspace/small';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-small-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('readSmallSync', () => {
  it('reads a small file whole, and only up to the limit', () => {
    const small = path.join(tmp, 'small');
    fs.writeFileSync(small, Buffer.alloc(SMALL_FILE_BYTES, 'a'));
    expect(readSmallSync(small)).toEqual(Buffer.alloc(SMALL_FILE_BYTES, 'a'));
    const large = path.join(tmp, 'large');
    fs.writeFileSync(large, Buffer.alloc(SMALL_FILE_BYTES + 1, 'a'));
    expect(readSmallSync(large)).toBe('large');
  });

  it('never follows a link, never reads a folder, never waits on a fifo', () => {
    fs.writeFileSync(path.join(tmp, 'target'), 'secret');
    fs.symlinkSync(path.join(tmp, 'target'), path.join(tmp, 'link'));
    expect(readSmallSync(path.join(tmp, 'link'))).toBe('link');
    fs.mkdirSync(path.join(tmp, 'dir'));
    expect(readSmallSync(path.join(tmp, 'dir'))).toBe('special');
    execFileSync('mkfifo', [path.join(tmp, 'fifo')]);
    // No writer: a plain open for reading would block this thread for good.
    expect(readSmallSync(path.join(tmp, 'fifo'))).toBe('special');
  });

  it('throws for a missing file as fs does', () => {
    expect(() => readSmallSync(path.join(tmp, 'nope'))).toThrow(/ENOENT/);
  });
});

describe('pace', () => {
  it('lets a timer run during a long stretch of blocking work', async () => {
    let fired = false;
    setTimeout(() => (fired = true), 0);
    const start = performance.now();
    // Blocking work paced as the callers do, for a few slices: the timer must get its turn in between.
    while (performance.now() - start < SLICE_MS * 4 && !fired) {
      await pace();
      const until = performance.now() + 1;
      while (performance.now() < until) {
        // busy: a blocking call
      }
    }
    expect(fired).toBe(true);
  });
});

describe('staging a changed file that is no longer a file', () => {
  it.each(['fifo', 'link'])('leaves out a file turned into a %s after the look', async (what) => {
    const root = path.join(tmp, 'ws');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(root, 'keep.txt'), 'kept\n');
    fs.writeFileSync(path.join(root, 'turns.txt'), 'first\n');
    await snapshotWorkspace({ workspace: root, message: 'one' });
    fs.writeFileSync(path.join(root, 'keep.txt'), 'kept, changed\n');
    fs.writeFileSync(path.join(root, 'turns.txt'), 'second\n');
    const staging = await look(shadowGitDir(root), root);
    expect(staging.dirty).toEqual(['keep.txt', 'turns.txt']);
    fs.rmSync(path.join(root, 'turns.txt'));
    if (what === 'fifo') execFileSync('mkfifo', [path.join(root, 'turns.txt')]);
    else fs.symlinkSync('keep.txt', path.join(root, 'turns.txt'));
    await stageDirty(staging);
    expect(staging.listing.entries.map((e) => e.path)).toEqual(['keep.txt']);
    // The next look sees what the path is now: a link is staged as one, a fifo is never staged.
    const next = await look(shadowGitDir(root), root);
    await stageDirty(next);
    const kinds = Object.fromEntries(next.listing.entries.map((e) => [e.path, e.kind]));
    expect(kinds).toEqual(
      what === 'link' ? { 'keep.txt': 'file', 'turns.txt': 'symlink' } : { 'keep.txt': 'file' },
    );
  });
});
