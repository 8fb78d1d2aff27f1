/**
 * Many hosts (README "Many hosts"), server-free: the host queue's name, the host id's configuration, what
 * counts as a lost host, which checkpoint a moved run restores, that the host survives continue-as-new,
 * and the checkpoint store itself: a checkpoint pushed from one host's workspace and restored into
 * another's is the same tree, byte for byte, nested repository, modes and empty folders included.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  TimeoutFailure,
} from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { defaultHostId, loadConfig } from '../../config/env';
import { ConfigError } from '../../config/errors';
import { createHostActivities, fetchCheckpoints, pushCheckpoint, storeRepo } from '../../activities/host';
import { createActivities } from '../../activities';
import { createLogger } from '../../src/logger';
import { initWorkspace, restoreWorkspace, shadowGitDir, snapshotWorkspace } from '../../activities/workspace';
import { agentTaskQueue, hostTaskQueue } from '../../src/shared/names';
import type { Checkpoint } from '../../src/shared/run';
import { isHostLost } from '../../workflows/host-lost';
import { packCarry, unpackCarry, type CarriedState } from '../../workflows/project/carry';
import { moveCheckpoint } from '../../workflows/project/hosts';
import { exactListing } from '../harness/tree';

const machine = { cores: 2, memoryBytes: 4 * 2 ** 30 };

function cp(id: string, phaseIndex: number, rolledBack = false): Checkpoint {
  return {
    id,
    label: id,
    phase: `p${phaseIndex}`,
    phaseIndex,
    commit: `c-${id}`,
    manifestPath: '',
    createdAt: '2026-12-01T00:00:00Z',
    runId: 'r',
    ...(rolledBack ? { rolledBack } : {}),
  };
}

function activityFailure(cause: Error): ActivityFailure {
  return new ActivityFailure(
    'activity failed',
    'checkpointPhase',
    '1',
    'NON_RETRYABLE_FAILURE',
    undefined,
    cause,
  );
}

describe('host queues and configuration', () => {
  it('names the host queue after the shared one and the host id; its agent turns get their own', () => {
    expect(hostTaskQueue('orchestrator', 'web-1')).toBe('orchestrator-host-web-1');
    expect(agentTaskQueue(hostTaskQueue('orchestrator', 'web-1'))).toBe('orchestrator-host-web-1-agents');
  });

  it('defaults the host id to the hostname, made safe for a queue name', () => {
    expect(defaultHostId('worker-7.example.org')).toBe('worker-7.example.org');
    expect(defaultHostId('.weird host/name')).toBe('weird-host-name');
    expect(defaultHostId('')).toBe('host');
    const c = loadConfig({}, {}, '/tmp/x', machine);
    expect(c.host.id).toBe(defaultHostId());
    expect(c.host.moveAfterMs).toBe(300_000);
    expect(c.host.checkpointStore).toBeUndefined();
  });

  it('reads the host id, the move time and the checkpoint store, and names a bad one in one line', () => {
    const c = loadConfig(
      {
        ORCHESTRATOR_HOST_ID: 'host-b',
        ORCHESTRATOR_HOST_MOVE_AFTER_S: '15',
        ORCHESTRATOR_CHECKPOINT_STORE: '/mnt/checkpoints',
      },
      {},
      '/tmp/x',
      machine,
    );
    expect(c.host).toEqual({ id: 'host-b', moveAfterMs: 15_000, checkpointStore: '/mnt/checkpoints' });
    expect(() => loadConfig({ ORCHESTRATOR_HOST_ID: 'a b' }, {}, '/tmp/x', machine)).toThrow(
      new ConfigError(
        'ORCHESTRATOR_HOST_ID: must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit (got "a b")',
      ),
    );
    expect(() => loadConfig({ ORCHESTRATOR_CHECKPOINT_STORE: 'rel/dir' }, {}, '/tmp/x', machine)).toThrow(
      /^ORCHESTRATOR_CHECKPOINT_STORE: must be an absolute path/,
    );
    expect(() => loadConfig({ ORCHESTRATOR_HOST_MOVE_AFTER_S: '0' }, {}, '/tmp/x', machine)).toThrow(
      /^ORCHESTRATOR_HOST_MOVE_AFTER_S: must be positive/,
    );
  });
});

describe('the host a run or team claims', () => {
  it('says whether it has a checkpoint store: a team keeps checkpoints only where it can move from them', async () => {
    const claim = (env: Record<string, string>) =>
      createHostActivities({
        config: loadConfig({ ORCHESTRATOR_HOST_ID: 'host-a', ...env }, {}, '/tmp/x', machine),
        logger: createLogger('silent'),
      }).claimHost();
    expect(await claim({})).toEqual({
      hostId: 'host-a',
      queue: hostTaskQueue('orchestrator', 'host-a'),
      moveAfterMs: 300_000,
      store: false,
    });
    expect((await claim({ ORCHESTRATOR_CHECKPOINT_STORE: '/mnt/checkpoints' })).store).toBe(true);
  });
});

describe("a rollback's restore as a local activity (restoreHere)", () => {
  it("restores only on the run's host (or for a run without one), and touches nothing elsewhere", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-restore-here-'));
    try {
      const ws = path.join(root, 'ws');
      fs.mkdirSync(ws);
      fs.writeFileSync(path.join(ws, 'a.txt'), 'one');
      await initWorkspace({ workspace: ws });
      const { commit } = await snapshotWorkspace({ workspace: ws, message: 'one' });
      const activities = createHostActivities({
        config: loadConfig({ ORCHESTRATOR_HOST_ID: 'host-a' }, {}, '/tmp/x', machine),
        logger: createLogger('silent'),
      });
      fs.writeFileSync(path.join(ws, 'a.txt'), 'two');
      fs.writeFileSync(path.join(ws, 'new.txt'), 'new');
      expect(await activities.restoreHere({ hostId: 'host-b', workspace: ws, commit })).toEqual({
        restored: false,
      });
      expect(fs.readFileSync(path.join(ws, 'a.txt'), 'utf8')).toBe('two');
      expect(fs.existsSync(path.join(ws, 'new.txt'))).toBe(true);
      expect(await activities.restoreHere({ hostId: 'host-a', workspace: ws, commit })).toEqual({
        restored: true,
      });
      expect(fs.readFileSync(path.join(ws, 'a.txt'), 'utf8')).toBe('one');
      expect(fs.existsSync(path.join(ws, 'new.txt'))).toBe(false);
      fs.writeFileSync(path.join(ws, 'a.txt'), 'three');
      expect(await activities.restoreHere({ workspace: ws, commit })).toEqual({ restored: true });
      expect(fs.readFileSync(path.join(ws, 'a.txt'), 'utf8')).toBe('one');
      await expect(activities.restoreHere({ hostId: 'host-a', workspace: 'rel', commit })).rejects.toThrow(
        /restoreHere: .*absolute path/,
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("a phase's checkpoint as a local activity (checkpointHere)", () => {
  it("checkpoints only on the run's host (or for a run without one), and touches nothing elsewhere", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-checkpoint-here-'));
    try {
      const ws = path.join(root, 'ws');
      const outputsDir = path.join(root, 'outputs');
      fs.mkdirSync(ws);
      fs.writeFileSync(path.join(ws, 'a.txt'), 'one');
      await initWorkspace({ workspace: ws });
      const activities = createActivities({
        config: loadConfig(
          { ORCHESTRATOR_HOST_ID: 'host-a', ORCHESTRATOR_OUTPUTS_DIR: outputsDir },
          {},
          root,
          machine,
        ),
        logger: createLogger('silent'),
      });
      const args = {
        workspace: ws,
        outputsDir,
        runId: 'run-1',
        phase: 'build',
        checkpoint: 'CP1',
        label: 'post-build',
        artifacts: [{ pattern: '*.txt', min_count: 1 }],
      };
      const commits = () =>
        execFileSync('git', ['--git-dir', shadowGitDir(ws), 'rev-list', '--all'], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean).length;
      const before = commits();
      expect(await activities.checkpointHere({ ...args, hostId: 'host-b' })).toEqual({ here: false });
      expect(commits()).toBe(before);
      expect(fs.existsSync(path.join(outputsDir, 'run-1'))).toBe(false);

      const here = await activities.checkpointHere({ ...args, hostId: 'host-a' });
      expect(here).toMatchObject({ here: true, result: { ok: true, totals: { files: 1, bytes: 3 } } });
      expect(commits()).toBe(before + 1);
      const manifest = here.here ? here.result.manifestPath : undefined;
      expect(manifest && fs.existsSync(manifest)).toBe(true);

      fs.writeFileSync(path.join(ws, 'b.txt'), 'two');
      const noHost = await activities.checkpointHere({ ...args, checkpoint: 'CP2' });
      expect(noHost).toMatchObject({ here: true, result: { ok: true, totals: { files: 2 } } });
      await expect(activities.checkpointHere({ ...args, hostId: 7 as unknown as string })).rejects.toThrow(
        /checkpointHere: hostId: expected a string/,
      );
      await expect(
        activities.checkpointHere({ ...args, workspace: 'rel', hostId: 'host-a' }),
      ).rejects.toThrow(/absolute path/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('a lost host', () => {
  it('is a ScheduleToStart timeout, directly or as the cause of an activity or child failure', () => {
    const lost = new TimeoutFailure('timed out', undefined, 'SCHEDULE_TO_START');
    expect(isHostLost(lost)).toBe(true);
    expect(isHostLost(activityFailure(lost))).toBe(true);
    const child = new ChildWorkflowFailure(
      'default',
      { workflowId: 'w', runId: 'r' },
      'agentWorkflow',
      'NON_RETRYABLE_FAILURE',
      activityFailure(lost),
    );
    expect(isHostLost(child)).toBe(true);
  });

  it('is not any other timeout or failure', () => {
    expect(isHostLost(activityFailure(new TimeoutFailure('hb', undefined, 'HEARTBEAT')))).toBe(false);
    expect(isHostLost(activityFailure(new TimeoutFailure('sc', undefined, 'START_TO_CLOSE')))).toBe(false);
    expect(
      isHostLost(activityFailure(ApplicationFailure.create({ type: 'AgentExited', message: 'x' }))),
    ).toBe(false);
    expect(isHostLost(new Error('SCHEDULE_TO_START'))).toBe(false);
    expect(isHostLost(undefined)).toBe(false);
  });
});

describe('the checkpoint a moved run restores', () => {
  it('is the live checkpoint of the latest phase, else CP0, else none', () => {
    const base = cp('CP0', -1);
    expect(moveCheckpoint([cp('CP1', 0), cp('CP2', 1)], base)?.id).toBe('CP2');
    // A rolled-back checkpoint is not restored; after a rollback to CP1 and a new CP3 of phase 1, CP3 is.
    expect(moveCheckpoint([cp('CP1', 0), cp('CP2', 1, true)], base)?.id).toBe('CP1');
    expect(moveCheckpoint([cp('CP1', 0), cp('CP2', 1, true), cp('CP3', 1)], base)?.id).toBe('CP3');
    expect(moveCheckpoint([cp('CP1', 0, true)], base)?.id).toBe('CP0');
    expect(moveCheckpoint([], undefined)).toBeUndefined();
  });
});

describe('the host in the continue-as-new carry', () => {
  it('is carried, and absent for runs that had none', () => {
    const ctx = { runId: 'run-1', outputsDir: '/out', phaseNames: ['a', 'b'] };
    const st: CarriedState = { ...unpackCarry(undefined, ctx) };
    expect(packCarry(st, {}, 'run-1').host).toBeUndefined();
    const host = { hostId: 'host-a', queue: 'orchestrator-host-host-a', moveAfterMs: 15_000 };
    const back = unpackCarry(packCarry({ ...st, host }, {}, 'run-1'), ctx);
    expect(back.host).toEqual(host);
  });
});

describe('the checkpoint store', () => {
  it("restores a checkpoint pushed from one host's workspace into another's, exactly", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-store-'));
    const [a, b, store] = ['host-a/ws', 'host-b/ws', 'store'].map((d) => path.join(tmp, d)) as [
      string,
      string,
      string,
    ];
    fs.mkdirSync(path.join(a, 'src/empty'), { recursive: true });
    fs.writeFileSync(path.join(a, 'src/main.ts'), 'export {};\n');
    fs.writeFileSync(path.join(a, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    fs.symlinkSync('src/main.ts', path.join(a, 'link'));
    // A nested repository keeps its .git through the store (the snapshot's extra objects go too).
    fs.mkdirSync(path.join(a, 'lib'));
    execFileSync('git', ['init', '--quiet', path.join(a, 'lib')]);
    fs.writeFileSync(path.join(a, 'lib/x.txt'), 'x\n');
    await initWorkspace({ workspace: a });
    const first = await snapshotWorkspace({ workspace: a, message: 'CP1 first' });
    await pushCheckpoint({
      store,
      runId: 'run-1',
      shadowGitDir: shadowGitDir(a),
      checkpoint: 'CP1',
      commit: first.commit,
    });
    const atCp1 = exactListing(a);
    fs.writeFileSync(path.join(a, 'src/main.ts'), 'changed\n');
    const second = await snapshotWorkspace({ workspace: a, message: 'CP2 second' });
    // Pushed again: only the new objects travel; both checkpoints are in the store.
    await pushCheckpoint({
      store,
      runId: 'run-1',
      shadowGitDir: shadowGitDir(a),
      checkpoint: 'CP2',
      commit: second.commit,
    });
    const refs = execFileSync(
      'git',
      ['--git-dir', storeRepo(store, 'run-1'), 'for-each-ref', '--format=%(refname)'],
      {
        encoding: 'utf8',
      },
    );
    expect(refs).toContain('refs/checkpoints/CP1');
    expect(refs).toContain('refs/checkpoints/CP2');

    // Host B has never seen the run: a fresh workspace, the checkpoints fetched, CP1 restored.
    await initWorkspace({ workspace: b });
    await fetchCheckpoints({ store, runId: 'run-1', shadowGitDir: shadowGitDir(b) });
    await restoreWorkspace({ workspace: b, commit: first.commit });
    expect(exactListing(b)).toEqual(atCp1);
    await restoreWorkspace({ workspace: b, commit: second.commit });
    expect(fs.readFileSync(path.join(b, 'src/main.ts'), 'utf8')).toBe('changed\n');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("sets a fork up from its parent's checkpoint in the store: that checkpoint only, into an empty workspace", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-store-fork-'));
    const [a, fork, store] = ['host-a/ws', 'host-b/fork', 'store'].map((d) => path.join(tmp, d)) as [
      string,
      string,
      string,
    ];
    fs.mkdirSync(path.join(a, 'sub/empty'), { recursive: true });
    fs.writeFileSync(path.join(a, 'sub/run.sh'), '#!/bin/sh\n', { mode: 0o750 });
    fs.writeFileSync(path.join(a, 'a.txt'), 'one\n');
    await initWorkspace({ workspace: a });
    const cp1 = await snapshotWorkspace({ workspace: a, message: 'CP1' });
    const shadow = shadowGitDir(a);
    await pushCheckpoint({
      store,
      runId: 'parent',
      shadowGitDir: shadow,
      checkpoint: 'CP1',
      commit: cp1.commit,
    });
    const atCp1 = exactListing(a);
    fs.writeFileSync(path.join(a, 'a.txt'), 'two\n');
    const cp2 = await snapshotWorkspace({ workspace: a, message: 'CP2' });
    await pushCheckpoint({
      store,
      runId: 'parent',
      shadowGitDir: shadow,
      checkpoint: 'CP2',
      commit: cp2.commit,
    });

    const config = loadConfig(
      { ORCHESTRATOR_HOST_ID: 'host-b', ORCHESTRATOR_CHECKPOINT_STORE: store },
      {},
      tmp,
      machine,
    );
    const host = createHostActivities({ config, logger: createLogger('silent') });
    const adoptWorkspace = (i: Parameters<typeof host.adoptWorkspace>[0]) => host.adoptWorkspace(i);
    const input = {
      runId: 'parent-fork',
      workspace: fork,
      checkpoint: 'CP1',
      commit: cp1.commit,
      from: 'host-a',
      sourceRunId: 'parent',
    };
    expect((await adoptWorkspace(input)).hostId).toBe('host-b');
    expect(exactListing(fork)).toEqual(atCp1);
    // Only the forked checkpoint came along, under its own ref; a retry of the same setup is harmless.
    const refs = execFileSync(
      'git',
      ['--git-dir', shadowGitDir(fork), 'for-each-ref', '--format=%(refname)'],
      {
        encoding: 'utf8',
      },
    );
    expect(refs).toContain('refs/checkpoints/CP1');
    expect(refs).not.toContain('refs/checkpoints/CP2');
    await adoptWorkspace(input);
    expect(exactListing(fork)).toEqual(atCp1);

    // Someone else's files are never replaced; a checkpoint the store lacks is named.
    const other = path.join(tmp, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'mine.txt'), 'keep\n');
    await expect(adoptWorkspace({ ...input, workspace: other })).rejects.toMatchObject({
      type: 'TargetNotEmpty',
      nonRetryable: true,
    });
    expect(fs.readdirSync(other)).toEqual(['mine.txt']);
    await expect(
      adoptWorkspace({ ...input, workspace: path.join(tmp, 'new'), checkpoint: 'CP9' }),
    ).rejects.toMatchObject({ type: 'CheckpointNotInStore', nonRetryable: true });
    await expect(
      adoptWorkspace({ ...input, workspace: path.join(tmp, 'new'), sourceRunId: 'never-stored' }),
    ).rejects.toMatchObject({ type: 'CheckpointNotInStore', nonRetryable: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
