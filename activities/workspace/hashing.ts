/**
 * Content hashes by git blob id: a file's sha256 and git blob id in one read, and a bounded memory of the
 * sha256 of content git indexed, so unchanged files are never read twice for a manifest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';

/**
 * A bounded, approximately least-recently-used map of strings: memory per worker stays flat however many
 * workspaces and files it has seen. Two generations of at most half the capacity each: a hit in the young
 * one is a plain lookup (a strict LRU's delete and re-insert on every hit cost ~20 ms per 10,000 lookups,
 * a gate's every phase), a hit in the old one moves the entry to the young one, and when the young one is
 * full the old one is dropped. So an entry used since the last turn-over is kept, and at most `capacity`
 * entries are held.
 */
export class LruMap {
  private young = new Map<string, string>();
  private old = new Map<string, string>();
  private readonly half: number;
  constructor(readonly capacity: number) {
    this.half = Math.max(1, Math.floor(capacity / 2));
  }
  get(key: string): string | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const aged = this.old.get(key);
    if (aged === undefined) return undefined;
    this.old.delete(key);
    this.put(key, aged);
    return aged;
  }
  set(key: string, value: string): void {
    this.old.delete(key);
    this.put(key, value);
  }
  clear(): void {
    this.young = new Map();
    this.old = new Map();
  }
  get size(): number {
    return this.young.size + this.old.size;
  }
  private put(key: string, value: string): void {
    this.young.set(key, value);
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}

/** Files up to this size are read whole; larger ones are streamed. */
const WHOLE_READ_BYTES = 1024 * 1024;

/** sha256 and git blob id of a file in one read. */
export async function hashFile(file: string): Promise<{ sha256: string; blob: string; size: number }> {
  const { size } = await fs.stat(file);
  if (size <= WHOLE_READ_BYTES) {
    const content = await fs.readFile(file);
    // A file that changed size since the stat has no consistent blob id: one that matches nothing.
    return content.length === size ? hashBuffer(content) : { ...hashBuffer(content), blob: '' };
  }
  const sha = createHash('sha256');
  const git = createHash('sha1').update(`blob ${size}\0`);
  let read = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    sha.update(chunk);
    git.update(chunk);
    read += chunk.length;
  }
  return { sha256: sha.digest('hex'), blob: read === size ? git.digest('hex') : '', size: read };
}

/** sha256, git blob id and size of content read whole. */
export function hashBuffer(content: Buffer): { sha256: string; blob: string; size: number } {
  return {
    sha256: createHash('sha256').update(content).digest('hex'),
    blob: blobId(content),
    size: content.length,
  };
}

/** sha256 and size by git blob id: content-addressed, so valid for any workspace and any phase. */
const HASHES = new LruMap(200_000);

/** The sha256 and size of content git indexed as `blob`, when some earlier read has seen it. */
export function knownHash(blob: string): { sha256: string; size: number } | undefined {
  const v = HASHES.get(blob);
  if (v === undefined) return undefined;
  const [sha256, size] = v.split(':');
  return { sha256: sha256!, size: Number(size) };
}

/** Remembers what was read, if it is what git indexed (`actualBlob === blob`). */
export function rememberHash(blob: string, actualBlob: string, sha256: string, size: number): void {
  if (blob && actualBlob === blob) HASHES.set(blob, `${sha256}:${size}`);
}

/** Runs `fn` over `items` with at most `limit` at a time; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** Git blob id of a buffer (what `git hash-object` prints). */
export function blobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}
