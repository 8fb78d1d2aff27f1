/** Exact listings of a folder, for tests that check a restore byte for byte. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Every entry under `root` with its type, full mode and content hash (symlinks by target), sorted.
 * Top-level entries named in `skip` are left out (by default the workspace's own root `.git` and
 * `.orchestrator/`, which hold the user's history and ours, not the workspace's files).
 */
export function exactListing(root: string, skip: readonly string[] = ['.git', '.orchestrator']): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip.includes(r)) continue;
      const full = path.join(root, r);
      const st = fs.lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`l ${r} -> ${fs.readlinkSync(full)}`);
      else if (st.isDirectory()) {
        out.push(`d ${r} ${mode}`);
        walk(r);
      } else out.push(`f ${r} ${mode} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
    }
  };
  walk('');
  return out.sort();
}
