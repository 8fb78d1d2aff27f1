import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureStateDir } from '../../activities/workspace';

describe("the workspace's .orchestrator/ folder (ensureStateDir)", () => {
  it('gets a .gitignore that ignores it all, and one a killed write left empty is written again', async () => {
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-state-dir-'));
    const ignore = path.join(ws, '.orchestrator', '.gitignore');
    await ensureStateDir(ws);
    const made = fs.readFileSync(ignore, 'utf8');
    expect(made.split('\n')).toContain('*');
    // What a worker SIGKILLed between creating the file and writing it leaves behind.
    fs.writeFileSync(ignore, '');
    await ensureStateDir(ws);
    expect(fs.readFileSync(ignore, 'utf8')).toBe(made);
    // Called again with the file as it should be: unchanged.
    await ensureStateDir(ws);
    expect(fs.readFileSync(ignore, 'utf8')).toBe(made);
    fs.rmSync(ws, { recursive: true, force: true });
  });
});
