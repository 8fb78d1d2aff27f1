/**
 * The incremental structures behind a checkpoint's cost (activities/workspace/trees.ts and the stat
 * cache's patches in stage.ts): a tree index changed path by path writes the tree a from-scratch build and
 * `git write-tree` make of the same entries, on random changes; the cache file, patched instead of
 * rewritten, reads back as the map it was written from, and a patch cut short is ignored whole.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeIndex, type TreeBlob } from '../../activities/workspace/trees';
import {
  parseCache,
  patchKnown,
  readCache,
  writeCache,
  writeTrees,
  type Known,
} from '../../activities/workspace/stage';

let tmp: string;
let gitDir: string;
beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-trees-'));
  gitDir = path.join(tmp, 'repo.git');
  await execa('git', ['init', '--quiet', '--bare', gitDir]);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const gitEnv = { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };

/** What `git write-tree` makes of an index holding exactly `entries` (blobs need not exist). */
async function gitWriteTree(entries: ReadonlyMap<string, TreeBlob>): Promise<string> {
  const index = path.join(tmp, `index-${Math.random().toString(36).slice(2)}`);
  const env = { ...gitEnv, GIT_INDEX_FILE: index };
  const input = [...entries].map(([p, b]) => `${b.mode} ${b.id}\t${p}`).join('\n');
  await execa('git', [`--git-dir=${gitDir}`, 'update-index', '--add', '--index-info'], {
    env,
    input: input ? `${input}\n` : '',
  });
  const { stdout } = await execa('git', [`--git-dir=${gitDir}`, 'write-tree', '--missing-ok'], { env });
  fs.rmSync(index, { force: true });
  return stdout.trim();
}

/** mulberry32: a seeded generator whose low bits do not cycle (an LCG's `% n` repeats within a few draws). */
let seed = 11;
function rand(n: number): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) % n;
}
const blobId = (s: string) => createHash('sha1').update(s).digest('hex');
const MODES: TreeBlob['mode'][] = ['100644', '100644', '100755', '120000'];

/** A random path in a small set of folders and names, so that changes collide, nest and empty folders. */
function randomPath(): string {
  const depth = 1 + rand(4);
  const parts: string[] = [];
  for (let d = 0; d < depth - 1; d++) parts.push(['a', 'b', 'c', 'a-b', 'a.b', 'z'][rand(6)]!);
  parts.push(`f${rand(12)}${['', '.txt', '-x', '.a'][rand(4)]}`);
  return parts.join('/');
}

/** Whether `p` may be added to `entries` without a path being both a file and a folder. */
function fits(entries: ReadonlyMap<string, TreeBlob>, p: string): boolean {
  for (const q of entries.keys()) {
    if (q !== p && (q.startsWith(`${p}/`) || p.startsWith(`${q}/`))) return false;
  }
  return true;
}

describe('incremental tree index', () => {
  it('equals a from-scratch build and git write-tree after every round of random changes', async () => {
    const entries = new Map<string, TreeBlob>();
    while (entries.size < 60) {
      const p = randomPath();
      if (fits(entries, p)) entries.set(p, { mode: MODES[rand(4)]!, id: blobId(`${p} 0`) });
    }
    const incremental = TreeIndex.of(entries);
    expect(await incremental.write(gitDir)).toBe(await gitWriteTree(entries));
    for (let round = 1; round <= 25; round++) {
      const changes = 1 + rand(round % 5 === 0 ? 40 : 6);
      for (let k = 0; k < changes; k++) {
        const op = rand(4);
        const known = [...entries.keys()];
        if (op === 0 && known.length > 0) {
          const p = known[rand(known.length)]!;
          entries.delete(p);
          incremental.remove(p);
        } else if (op === 1 && known.length > 0) {
          // A whole folder goes (every path under a prefix).
          const p = known[rand(known.length)]!;
          const dir = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : p;
          for (const q of known) {
            if (q === dir || q.startsWith(`${dir}/`)) {
              entries.delete(q);
              incremental.remove(q);
            }
          }
        } else {
          const p = op === 2 && known.length > 0 ? known[rand(known.length)]! : randomPath();
          if (!fits(entries, p)) continue;
          const blob: TreeBlob = { mode: MODES[rand(4)]!, id: blobId(`${p} ${round} ${k}`) };
          entries.set(p, blob);
          incremental.set(p, blob);
        }
      }
      // Removing what is not there changes nothing.
      incremental.remove('no/such/path');
      const id = await incremental.write(gitDir);
      expect(id, `round ${round}`).toBe(await TreeIndex.of(entries).write(gitDir));
      expect(id, `round ${round}`).toBe(await gitWriteTree(entries));
    }
    // Down to nothing: the empty tree.
    for (const p of [...entries.keys()]) incremental.remove(p);
    expect(await incremental.write(gitDir)).toBe('4b825dc642cb6eb9a060e54bf8d69288fbee4904');
    // Every tree written is a valid object.
    await execa('git', [`--git-dir=${gitDir}`, 'fsck', '--strict', '--connectivity-only'], { env: gitEnv });
  });

  it('rewrites a tree object lost after it was written once (a write that failed half-way is redone)', async () => {
    const t = TreeIndex.of([
      ['a/b/c.txt', { mode: '100644', id: blobId('c') }],
      ['a/d.txt', { mode: '100755', id: blobId('d') }],
    ]);
    const first = await t.write(gitDir);
    t.set('a/e.txt', { mode: '100644', id: blobId('e') });
    const second = await t.write(gitDir);
    const file = path.join(gitDir, 'objects', second.slice(0, 2), second.slice(2));
    fs.rmSync(file, { force: true });
    // Unchanged since: the object is known written, so not checked again; a change makes it stale again.
    t.remove('a/e.txt');
    expect(await t.write(gitDir)).toBe(first);
    t.set('a/e.txt', { mode: '100644', id: blobId('e') });
    expect(await t.write(gitDir)).toBe(second);
    expect(fs.existsSync(file)).toBe(true);
  });

  it('refuses a path that is both a file and a folder', async () => {
    const t = TreeIndex.of([
      ['a', { mode: '100644', id: blobId('a') }],
      ['a/b', { mode: '100644', id: blobId('b') }],
    ]);
    await expect(t.write(gitDir)).rejects.toThrow(/both a file and a folder/);
  });

  it('follows a stat cache map patched in place (writeTrees, patchKnown)', async () => {
    const known = new Map<string, Known>();
    const key = (mode: string, n: number) => `f${mode}:${n} 10:1.0000000000:1.0000000000`;
    for (let i = 0; i < 40; i++)
      known.set(`d${i % 4}/f${i}`, { key: key('644', i), blob: blobId(`${i}`), kind: 'file' });
    const asEntries = () =>
      new Map(
        [...known].map(([p, k]) => [
          p,
          {
            mode: k.kind === 'symlink' ? '120000' : k.key.startsWith('f755') ? '100755' : '100644',
            id: k.blob,
          },
        ]) as [string, TreeBlob][],
      );
    expect(await writeTrees(gitDir, known)).toBe(await gitWriteTree(asEntries()));
    const indexed = new Map<string, { blob: string; kind: 'file' | 'symlink' }>([
      ['d0/f0', { blob: blobId('new 0'), kind: 'file' }],
      ['d9/new', { blob: blobId('new'), kind: 'symlink' }],
      ['d2/f2', { blob: blobId('x'), kind: 'file' }],
    ]);
    const found = new Map([
      ['d0/f0', { key: key('755', 100) }],
      ['d9/new', { key: 'l777:5 3:2.0000000000:2.0000000000' }],
      ['d2/f2', { key: key('644', 102) }],
    ]);
    // d1/f1 went; every path of d3 went (its folder too).
    const dirty = [
      'd0/f0',
      'd9/new',
      'd2/f2',
      'd1/f1',
      ...[...known.keys()].filter((p) => p.startsWith('d3/')),
    ];
    patchKnown(known, dirty, found, indexed);
    expect(known.get('d0/f0')).toEqual({ key: key('755', 100), blob: blobId('new 0'), kind: 'file' });
    expect(known.has('d1/f1')).toBe(false);
    expect(await writeTrees(gitDir, known)).toBe(await gitWriteTree(asEntries()));
  });
});

describe('stat cache patches', () => {
  const cacheFile = () => path.join(gitDir, 'orchestrator', 'index-stat');
  const entry = (n: number, kind: 'file' | 'symlink' = 'file'): Known => ({
    key: `${kind === 'file' ? 'f644' : 'l777'}:${n} ${n}:1.0000000000:1.0000000000`,
    blob: blobId(`blob ${n}`),
    kind,
  });

  it('appends what changed, and the file reads back as the map it describes', async () => {
    const known = new Map<string, Known>();
    for (let i = 0; i < 200; i++) known.set(`src/f${i}.txt`, entry(i, i % 10 === 0 ? 'symlink' : 'file'));
    await writeCache(gitDir, 1000, known, 'a'.repeat(40));
    const whole = fs.statSync(cacheFile()).size;
    for (let step = 1; step <= 5; step++) {
      known.set(`src/f${step}.txt`, entry(1000 + step));
      known.set(`new/p${step}.txt`, entry(2000 + step));
      known.delete(`src/f${100 + step}.txt`);
      await writeCache(gitDir, 1000 + step, known, 'b'.repeat(40), [
        `src/f${step}.txt`,
        `new/p${step}.txt`,
        `src/f${100 + step}.txt`,
      ]);
      const size = fs.statSync(cacheFile()).size;
      // A patch, not the whole file again.
      expect(size - whole).toBeLessThan(whole / 4);
      const parsed = parseCache(fs.readFileSync(cacheFile(), 'utf8'))!;
      expect(parsed.clean).toBe(true);
      expect(parsed.cache.walkedMs).toBe(1000 + step);
      expect(parsed.cache.tree).toBe('b'.repeat(40));
      expect(new Map([...parsed.cache.known].sort())).toEqual(new Map([...known].sort()));
    }
    // An empty patch records a new walk time and tree only; without a tree, the tree is forgotten.
    await writeCache(gitDir, 5000, known, undefined, []);
    const parsed = parseCache(fs.readFileSync(cacheFile(), 'utf8'))!;
    expect(parsed.cache.walkedMs).toBe(5000);
    expect(parsed.cache.tree).toBeUndefined();
    expect(parsed.cache.known.size).toBe(known.size);
    expect((await readCache(gitDir))!.known).toBe(known);
  });

  it('ignores a patch cut short (a worker killed while appending), and rewrites the file whole next', async () => {
    const filler = Array.from({ length: 20 }, (_, i): [string, Known] => [`z/${i}`, entry(100 + i)]);
    const known = new Map<string, Known>([['a', entry(1)], ['b', entry(2)], ...filler]);
    await writeCache(gitDir, 1000, known, 'a'.repeat(40));
    known.set('a', entry(3));
    known.delete('b');
    await writeCache(gitDir, 2000, known, 'b'.repeat(40), ['a', 'b']);
    const text = fs.readFileSync(cacheFile(), 'utf8');
    const patchAt = text.indexOf('\0\0') + 1;
    expect(patchAt).toBeGreaterThan(0);
    for (let cut = patchAt + 1; cut < text.length; cut++) {
      const parsed = parseCache(text.slice(0, cut))!;
      expect(parsed.clean, `cut at ${cut}`).toBe(false);
      // The state before the patch, whole: old keys, which no longer match the files, so looked at again.
      expect(parsed.cache.walkedMs).toBe(1000);
      expect(parsed.cache.tree).toBe('a'.repeat(40));
      expect([...parsed.cache.known]).toEqual([['a', entry(1)], ['b', entry(2)], ...filler]);
    }
    // A torn file on disk: read as before its patch, and the next write is a whole one (no patch after garbage).
    fs.writeFileSync(cacheFile(), text.slice(0, text.length - 5));
    const read = (await readCache(gitDir))!;
    expect(read.walkedMs).toBe(1000);
    read.known.set('c', entry(4));
    await writeCache(gitDir, 3000, read.known, 'c'.repeat(40), ['c']);
    const after = parseCache(fs.readFileSync(cacheFile(), 'utf8'))!;
    expect(after.clean).toBe(true);
    expect(after.baseBytes).toBe(fs.statSync(cacheFile()).size);
    expect(new Map([...after.cache.known].sort())).toEqual(
      new Map<string, Known>(
        ([['a', entry(1)], ['b', entry(2)], ['c', entry(4)], ...filler] as [string, Known][]).sort(),
      ),
    );
  });

  it('rewrites the file whole once the patches outgrow half of it', async () => {
    const known = new Map<string, Known>();
    for (let i = 0; i < 20; i++) known.set(`f${i}`, entry(i));
    await writeCache(gitDir, 1, known);
    let rewrites = 0;
    for (let step = 0; step < 30; step++) {
      known.set(`f${step % 20}`, entry(100 + step));
      await writeCache(gitDir, 2 + step, known, undefined, [`f${step % 20}`]);
      const parsed = parseCache(fs.readFileSync(cacheFile(), 'utf8'))!;
      if (parsed.baseBytes === fs.statSync(cacheFile()).size) rewrites++;
      expect(new Map([...parsed.cache.known].sort())).toEqual(new Map([...known].sort()));
    }
    expect(rewrites).toBeGreaterThan(0);
    expect(rewrites).toBeLessThan(30);
  });
});
