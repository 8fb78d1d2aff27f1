/**
 * The tree objects of a snapshot, kept between snapshots so that a checkpoint rebuilds only the folders
 * that changed.
 *
 * Computing every tree object of a 10,000-file workspace (10,000 entries encoded, ~100 objects hashed,
 * each checked on disk) cost a phase 50–100 ms of CPU, for a phase that changed ten files. A
 * {@link TreeIndex} holds every folder's entries and its last computed object; {@link TreeIndex.set} and
 * {@link TreeIndex.remove} mark a changed path's folder and its parents stale, and
 * {@link TreeIndex.write} recomputes only those (deepest first, so a parent names its subfolders' new ids)
 * and writes their objects. The result is the tree `git write-tree` makes of an index holding exactly the
 * same entries (a test builds both on random changes).
 *
 * Crash safety: an object is written only after every subtree it names (deepest first), and a folder is
 * counted as written only once its object is on disk; a write that failed half-way is redone by the next.
 */
import { WorkspaceError } from './git';
import { objectId, treeObject, writeObject, type TreeEntry } from './objects';

/** One blob entry: git's mode and the blob id. */
export interface TreeBlob {
  mode: '100644' | '100755' | '120000';
  id: string;
}

interface Folder {
  /** Relative path, `''` for the root. */
  path: string;
  depth: number;
  blobs: Map<string, TreeBlob>;
  /** Subfolders by name (each holds at least one blob somewhere below: empty folders are dropped). */
  folders: Map<string, Folder>;
  /** The object last computed, undefined while stale. */
  id?: string;
  content?: Buffer;
  /** Whether that object is known to be on disk. */
  written: boolean;
}

const newFolder = (p: string, depth: number): Folder => ({
  path: p,
  depth,
  blobs: new Map(),
  folders: new Map(),
  written: false,
});

export class TreeIndex {
  private readonly root = newFolder('', 0);
  /** Folders whose object must be recomputed. */
  private readonly stale = new Set<Folder>([this.root]);
  /** Folders computed but not yet on disk (a write that failed half-way). */
  private readonly unwritten = new Set<Folder>();

  /** A tree index of `entries` (path → blob), every folder stale. */
  static of(entries: Iterable<[string, TreeBlob]>): TreeIndex {
    const t = new TreeIndex();
    for (const [p, b] of entries) t.set(p, b);
    return t;
  }

  /** Sets the blob at `rel` (a path with `/`), creating its folders. */
  set(rel: string, blob: TreeBlob): void {
    const parts = rel.split('/');
    let folder = this.root;
    this.stale.add(folder);
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      let next = folder.folders.get(name);
      if (!next) {
        next = newFolder(folder.path ? `${folder.path}/${name}` : name, folder.depth + 1);
        folder.folders.set(name, next);
      }
      folder = next;
      this.stale.add(folder);
    }
    folder.blobs.set(parts[parts.length - 1]!, blob);
  }

  /** Removes the blob at `rel` (nothing when absent); folders left empty go too, as git has no empty trees. */
  remove(rel: string): void {
    const parts = rel.split('/');
    const chain: Folder[] = [this.root];
    for (let i = 0; i < parts.length - 1; i++) {
      const next = chain[chain.length - 1]!.folders.get(parts[i]!);
      if (!next) return;
      chain.push(next);
    }
    if (!chain[chain.length - 1]!.blobs.delete(parts[parts.length - 1]!)) return;
    for (let i = chain.length - 1; i >= 0; i--) {
      const folder = chain[i]!;
      if (i > 0 && folder.blobs.size === 0 && folder.folders.size === 0) {
        chain[i - 1]!.folders.delete(parts[i - 1]!);
        this.stale.delete(folder);
        this.unwritten.delete(folder);
      } else {
        this.stale.add(folder);
      }
    }
  }

  /**
   * Recomputes the stale folders' objects and writes every object not yet on disk (subtrees before the
   * trees naming them); returns the root tree's id.
   */
  async write(gitDir: string): Promise<string> {
    const stale = [...this.stale].sort((a, b) => b.depth - a.depth);
    for (const folder of stale) {
      const entries: TreeEntry[] = [];
      for (const [name, b] of folder.blobs) entries.push({ name, type: 'blob', id: b.id, mode: b.mode });
      for (const [name, sub] of folder.folders) {
        // One walk cannot see a path as a file and a folder at once; a tree naming both would be corrupt.
        if (folder.blobs.has(name)) {
          throw new WorkspaceError(
            `${folder.path ? `${folder.path}/` : ''}${name} is both a file and a folder in the stat cache`,
            'GitFailed',
            true,
          );
        }
        entries.push({ name, type: 'tree', id: sub.id! });
      }
      const content = treeObject(entries);
      const id = objectId('tree', content);
      if (id !== folder.id || !folder.written) {
        folder.id = id;
        folder.content = content;
        folder.written = false;
        this.unwritten.add(folder);
      }
      this.stale.delete(folder);
    }
    for (const folder of [...this.unwritten].sort((a, b) => b.depth - a.depth)) {
      await writeObject(gitDir, 'tree', folder.content!);
      folder.written = true;
      delete folder.content;
      this.unwritten.delete(folder);
    }
    return this.root.id!;
  }
}
