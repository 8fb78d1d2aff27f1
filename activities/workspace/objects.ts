/**
 * The few git objects and ref updates a snapshot makes, written in-process: a commit, the modes blob, the
 * tree naming a snapshot's extra objects, HEAD moved forward (with its reflog). Each was a git process
 * (`commit-tree`, `hash-object`, `mktree`, `update-ref`), and a process costs a checkpoint more than the
 * work itself. The formats are git's own (loose zlib objects, `<id>\n` ref files, one reflog line per
 * update); `git fsck --strict` checks them in the tests. Changed files' blobs and the trees of a snapshot
 * are written here too when the stat cache knows the tree (./stage); git stores them otherwise.
 */
import { createHash, randomUUID } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { deflate, deflateSync, inflate } from 'node:zlib';
import { lockIsStale, WorkspaceError } from './git';
import { pace, SMALL_FILE_BYTES } from './small';

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);
const IDENT = 'orchestrator <orchestrator@localhost>';
const ZERO = '0'.repeat(40);
const LOCK_RETRY_DELAYS_MS = [50, 100, 200, 400, 800, 1600];

/** The id git gives an object of `type` with `content`. */
export function objectId(type: 'blob' | 'tree' | 'commit', content: Buffer): string {
  return createHash('sha1').update(`${type} ${content.length}\0`).update(content).digest('hex');
}

/**
 * Writes a loose object (when it is not there yet) and returns its id. A small one with blocking calls
 * (./small: a phase writes a few dozen, and the thread pool's round trips cost more than the writes).
 */
export async function writeObject(
  gitDir: string,
  type: 'blob' | 'tree' | 'commit',
  content: Buffer,
): Promise<string> {
  const id = objectId(type, content);
  const file = path.join(gitDir, 'objects', id.slice(0, 2), id.slice(2));
  const tmp = path.join(gitDir, 'objects', `tmp_obj_${randomUUID().slice(0, 8)}`);
  const raw = () => Buffer.concat([Buffer.from(`${type} ${content.length}\0`), content]);
  if (content.length <= SMALL_FILE_BYTES) {
    await pace();
    if (fsSync.existsSync(file)) return id;
    const data = deflateSync(raw());
    fsSync.mkdirSync(path.dirname(file), { recursive: true });
    fsSync.writeFileSync(tmp, data, { mode: 0o444 });
    fsSync.renameSync(tmp, file);
    return id;
  }
  if (
    await fs.access(file).then(
      () => true,
      () => false,
    )
  )
    return id;
  const data = await deflateAsync(raw());
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(tmp, data, { mode: 0o444 });
  await fs.rename(tmp, file);
  return id;
}

/** One entry of a tree object; `mode` defaults to `40000` for a tree and `100644` for a blob. */
export interface TreeEntry {
  name: string;
  type: 'blob' | 'tree';
  id: string;
  /** Git's mode: `100644`, `100755` (executable), `120000` (symlink) for blobs. */
  mode?: '100644' | '100755' | '120000';
}

/** A tree object naming `entries` (git's order: by name, a tree's name compared as `name/`). */
export function treeObject(entries: readonly TreeEntry[]): Buffer {
  const keyed = entries.map((e) => ({ e, key: Buffer.from(e.type === 'tree' ? `${e.name}/` : e.name) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return Buffer.concat(
    keyed.flatMap(({ e }) => [
      Buffer.from(`${e.type === 'tree' ? '40000' : (e.mode ?? '100644')} ${e.name}\0`),
      Buffer.from(e.id, 'hex'),
    ]),
  );
}

/** Whether the loose object `id` exists (the shadow repository never packs: gc is off). */
export async function hasObject(gitDir: string, id: string): Promise<boolean> {
  return fs.access(path.join(gitDir, 'objects', id.slice(0, 2), id.slice(2))).then(
    () => true,
    () => false,
  );
}

/** A commit object by orchestrator at `seconds` (UTC), as `git commit-tree` writes it. */
export function commitObject(args: {
  tree: string;
  parent?: string;
  message: string;
  seconds: number;
}): Buffer {
  const who = `${IDENT} ${args.seconds} +0000`;
  return Buffer.from(
    `tree ${args.tree}\n${args.parent ? `parent ${args.parent}\n` : ''}author ${who}\ncommitter ${who}\n\n${args.message}`,
    'utf8',
  );
}

/** The ref HEAD names (`refs/heads/…`), or `HEAD` itself when it is detached. */
function headTarget(gitDir: string): string {
  const head = fsSync.readFileSync(path.join(gitDir, 'HEAD'), 'utf8').trim();
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (ref && !ref.split('/').includes('..')) return ref;
  if (/^[0-9a-f]{40}$/.test(head)) return 'HEAD';
  throw new WorkspaceError(`${gitDir}: HEAD is neither a commit nor a ref`, 'GitFailed');
}

/**
 * Takes `<file>.lock` as git does (O_EXCL), waiting for a live holder and removing a dead one's; returns
 * its descriptor.
 */
async function takeLock(gitDir: string, file: string): Promise<number> {
  const lock = `${file}.lock`;
  fsSync.mkdirSync(path.dirname(lock), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      return fsSync.openSync(lock, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await lockIsStale(lock, gitDir)) {
      await fs.rm(lock, { force: true });
      continue;
    }
    const delay = LOCK_RETRY_DELAYS_MS[attempt];
    if (delay === undefined) {
      throw new WorkspaceError(`${lock} is held by another process`, 'GitLocked', true);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Points `ref` (`HEAD`: the branch HEAD names) at `id`, as `git update-ref -m <message>` does: under the
 * ref's lock, with a reflog line for the ref (and for HEAD when moved through it). With blocking calls, as
 * small files are written (./small): a handful of tiny writes, each a pool round trip otherwise.
 */
export async function updateRef(
  gitDir: string,
  ref: string,
  id: string,
  message: string,
  old?: string,
): Promise<void> {
  await pace();
  const viaHead = ref === 'HEAD';
  const target = viaHead ? headTarget(gitDir) : ref;
  if (target.split('/').includes('..')) throw new WorkspaceError(`bad ref ${target}`, 'GitFailed');
  const file = path.join(gitDir, target);
  const fd = await takeLock(gitDir, file);
  const lock = `${file}.lock`;
  try {
    try {
      fsSync.writeSync(fd, `${id}\n`);
    } finally {
      fsSync.closeSync(fd);
    }
    fsSync.renameSync(lock, file);
  } catch (err) {
    fsSync.rmSync(lock, { force: true });
    throw err;
  }
  const line = `${old ?? ZERO} ${id} ${IDENT} ${Math.floor(Date.now() / 1000)} +0000\t${message.replace(/\s+/g, ' ').trim()}\n`;
  const logs = [target, ...(viaHead && target !== 'HEAD' ? ['HEAD'] : [])];
  for (const log of logs) {
    const logFile = path.join(gitDir, 'logs', log);
    fsSync.mkdirSync(path.dirname(logFile), { recursive: true });
    fsSync.appendFileSync(logFile, line);
  }
}

/**
 * Reads the loose object `id`: undefined when it is not there as a loose object (then git must read it),
 * WorkspaceError when it is corrupt.
 */
export async function readObject(
  gitDir: string,
  id: string,
): Promise<{ type: string; content: Buffer } | undefined> {
  let data: Buffer;
  try {
    data = await fs.readFile(path.join(gitDir, 'objects', id.slice(0, 2), id.slice(2)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const raw = await inflateAsync(data).catch(() => undefined);
  const nul = raw ? raw.indexOf(0) : -1;
  const [type, size] = raw && nul > 0 ? raw.subarray(0, nul).toString('latin1').split(' ') : [];
  const content = raw?.subarray(nul + 1);
  if (
    !type ||
    !content ||
    Number(size) !== content.length ||
    createHash('sha1').update(raw!).digest('hex') !== id
  ) {
    throw new WorkspaceError(`object ${id} in ${gitDir} is corrupt`, 'GitFailed');
  }
  return { type, content };
}

/** One entry of a tree object as read. */
export interface ReadTreeEntry {
  mode: string;
  name: string;
  id: string;
}

/** Parses a tree object's content. */
export function parseTree(content: Buffer): ReadTreeEntry[] {
  const out: ReadTreeEntry[] = [];
  for (let at = 0; at < content.length;) {
    const space = content.indexOf(0x20, at);
    const nul = content.indexOf(0, space);
    if (space < 0 || nul < 0 || nul + 21 > content.length)
      throw new WorkspaceError('malformed tree object', 'GitFailed');
    out.push({
      mode: content.subarray(at, space).toString('latin1'),
      name: content.subarray(space + 1, nul).toString('utf8'),
      id: content.subarray(nul + 1, nul + 21).toString('hex'),
    });
    at = nul + 21;
  }
  return out;
}
