/**
 * One walk per phase (activities/workspace/stage.ts `shareLook`): the checkpoint right after the gates
 * commits the tree the gates' listing saw instead of walking it again, but only while nothing the run did
 * since (a gate's command, a restore) can have changed it, and only for a short while.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { evaluateGateList } from '../../activities/governance';
import { checkpointPhase, restoreWorkspace, shadowGitDir } from '../../activities/workspace';
import { RACY_COARSE_MS, RACY_MS, SHARED_LOOK_MAX_MS } from '../../activities/workspace/stage';
import { GateSchema, type Gate } from '../../config/governance';
import { fullGitTree, settleTimestamps, writeIn } from '../harness/tree';

let tmp: string;
let ws: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-shared-'));
  ws = path.join(tmp, 'ws');
  fs.mkdirSync(ws);
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const write = (rel: string, content: string) => writeIn(ws, rel, content);
const settle = () => settleTimestamps(tmp, RACY_MS, RACY_COARSE_MS);
const fullTree = () => fullGitTree(ws, shadowGitDir(ws), tmp);
const treeOf = async (commit: string) =>
  (
    await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'rev-parse', `${commit}^{tree}`], {
      env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
    })
  ).stdout.trim();
const filesIn = async (commit: string) =>
  (
    await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'ls-tree', '-r', '--name-only', commit], {
      env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
    })
  ).stdout
    .split('\n')
    .filter(Boolean);

const validator: Gate = GateSchema.parse({
  id: 'no-keys',
  kind: 'validator',
  glob: '**/*',
  must_not_contain: 'PRIVATE KEY',
});
let n = 0;
async function checkpoint(): Promise<string> {
  n += 1;
  const r = await checkpointPhase({
    workspace: ws,
    outputsDir: path.join(tmp, 'out'),
    runId: 'r',
    phase: `p${n}`,
    checkpoint: `CP${n}`,
    label: 'x',
    artifacts: [],
  });
  expect(r.ok).toBe(true);
  return r.commit!;
}

/** A workspace with a first checkpoint (a full staging), its files settled, then one phase's change. */
async function phaseDone(): Promise<string> {
  write('a.txt', 'a\n');
  write('src/b.txt', 'b\n');
  const cp0 = await checkpoint();
  await settle();
  write('a.txt', 'a changed by the phase\n');
  return cp0;
}

describe('the walk the gates share with the checkpoint', () => {
  it('the checkpoint commits what the gates judged; a change made in between lands in the next one', async () => {
    await phaseDone();
    expect((await evaluateGateList({ workspace: ws, gates: [validator] })).passed).toBe(true);
    const judged = await fullTree();
    write('late.txt', 'written after the gates looked\n');
    const cp1 = await checkpoint();
    expect(await treeOf(cp1)).toBe(judged);
    expect(await filesIn(cp1)).not.toContain('late.txt');
    // Taken once: the next checkpoint walks and finds the late file.
    const cp2 = await checkpoint();
    expect(await filesIn(cp2)).toContain('late.txt');
    expect(await treeOf(cp2)).toBe(await fullTree());
  });

  it('is not taken when a gate ran a command after the listing', async () => {
    await phaseDone();
    const tool = GateSchema.parse({
      id: 'build',
      kind: 'tool',
      command: ['sh', '-c', 'echo out > built.txt'],
    });
    expect((await evaluateGateList({ workspace: ws, gates: [validator, tool] })).passed).toBe(true);
    expect(fs.existsSync(path.join(ws, 'built.txt'))).toBe(true);
    const cp1 = await checkpoint();
    expect(await filesIn(cp1)).toContain('built.txt');
    expect(await treeOf(cp1)).toBe(await fullTree());
  });

  it('is not taken after a restore between the gates and the checkpoint', async () => {
    const cp0 = await phaseDone();
    write('src/extra.txt', 'extra\n');
    expect((await evaluateGateList({ workspace: ws, gates: [validator] })).passed).toBe(true);
    await restoreWorkspace({ workspace: ws, commit: cp0 });
    expect(fs.existsSync(path.join(ws, 'src/extra.txt'))).toBe(false);
    const cp1 = await checkpoint();
    expect(await treeOf(cp1)).toBe(await treeOf(cp0));
    expect(await treeOf(cp1)).toBe(await fullTree());
  });

  it('is not taken once it is older than SHARED_LOOK_MAX_MS', async () => {
    await phaseDone();
    expect((await evaluateGateList({ workspace: ws, gates: [validator] })).passed).toBe(true);
    write('late.txt', 'written after the gates looked\n');
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now + SHARED_LOOK_MAX_MS + 1_000);
    const cp1 = await checkpoint();
    expect(await filesIn(cp1)).toContain('late.txt');
  });
});
