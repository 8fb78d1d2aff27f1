import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkpointPhase,
  createWorkspaceActivities,
  PhaseManifestSchema,
  readHold,
  RunManifestSchema,
  shadowGitDir,
  snapshotWorkspace,
  updateRunManifest,
  validateArtifacts,
  writeManifest,
  writeOutput,
} from '../../activities/workspace';
import { AUDIT_FILE } from '../../activities/audit';
import { loadIntake } from '../../config/intake';
import { GENESIS, nextAuditEntry, verifyAuditChain } from '../../src/shared/audit';
import { createLogger } from '../../src/logger';

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

let tmp: string;
let ws: string;
let outputs: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-art-'));
  ws = path.join(tmp, 'ws');
  outputs = path.join(tmp, 'outputs');
  fs.mkdirSync(ws);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const write = (rel: string, content: string) => {
  fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
  fs.writeFileSync(path.join(ws, rel), content);
};

describe('validateArtifacts', () => {
  it('finds files, dot files included, and hashes each once', async () => {
    write('plan.md', '# plan\n');
    write('src/a.txt', 'a');
    write('src/.hidden.txt', 'h');
    write('src/sub/b.txt', 'bb');
    write('.orchestrator/shadow.txt', 'never an artifact');
    const res = await validateArtifacts({
      workspace: ws,
      artifacts: [{ pattern: 'plan.md' }, { pattern: 'src/**/*.txt', min_count: 2 }, { pattern: '**/*.md' }],
    });
    expect(res.errors).toEqual([]);
    expect(res.ok).toBe(true);
    expect(res.files.map((f) => f.path)).toEqual([
      'plan.md',
      'src/.hidden.txt',
      'src/a.txt',
      'src/sub/b.txt',
    ]);
    for (const f of res.files) {
      expect(f.sha256).toBe(sha256(path.join(ws, f.path)));
      expect(f.size).toBe(fs.statSync(path.join(ws, f.path)).size);
    }
  });

  it('reports a pattern with too few files, with the counts', async () => {
    write('src/a.md', 'a');
    const res = await validateArtifacts({
      workspace: ws,
      artifacts: [
        { pattern: 'src/*.txt' },
        { pattern: 'src/*', min_count: 3 },
        { pattern: 'docs/**', min_count: 0 },
      ],
    });
    expect(res.ok).toBe(false);
    expect(res.errors).toEqual([
      'artifact "src/*.txt": found 0 files, need at least 1',
      'artifact "src/*": found 1 file, need at least 3',
    ]);
  });

  it('refuses patterns that escape the workspace and never follows symlinks out of it', async () => {
    fs.writeFileSync(path.join(tmp, 'outside.txt'), 'secret');
    fs.symlinkSync(tmp, path.join(ws, 'up'));
    fs.symlinkSync(path.join(tmp, 'outside.txt'), path.join(ws, 'linked.txt'));
    const res = await validateArtifacts({
      workspace: ws,
      artifacts: [
        { pattern: '../outside.txt' },
        { pattern: '/etc/*' },
        { pattern: 'up/**/*', min_count: 0 },
        { pattern: '*.txt', min_count: 0 },
      ],
    });
    expect(res.errors).toEqual([
      'artifact "../outside.txt": must be a relative path inside the workspace',
      'artifact "/etc/*": must be a relative path inside the workspace',
      'artifact "up/**/*": "up" resolves outside the workspace',
    ]);
    expect(res.files).toEqual([]);
  });
});

describe('validateArtifacts with the shadow index', () => {
  it('lists from the index (never .orchestrator/ or .git/) and re-hashes only changed content', async () => {
    write('a.txt', 'one');
    write('b.txt', 'two');
    write('.git/HEAD', 'ref: refs/heads/main');
    const first = await validateArtifacts({ workspace: ws, artifacts: [{ pattern: '**/*' }] });
    expect(first.files.map((f) => f.path)).toEqual(['a.txt', 'b.txt']);
    expect(fs.existsSync(shadowGitDir(ws))).toBe(true);
    write('a.txt', 'one, changed');
    const second = await validateArtifacts({ workspace: ws, artifacts: [{ pattern: '**/*' }] });
    expect(second.files.map((f) => f.path)).toEqual(['a.txt', 'b.txt']);
    for (const f of second.files) {
      expect(f.sha256).toBe(sha256(path.join(ws, f.path)));
      expect(f.size).toBe(fs.statSync(path.join(ws, f.path)).size);
    }
  });

  it('a folder name matches everything under it, as a glob walk would', async () => {
    write('docs/a.md', 'a');
    write('docs/sub/b.md', 'b');
    const res = await validateArtifacts({ workspace: ws, artifacts: [{ pattern: 'docs', min_count: 2 }] });
    expect(res.ok).toBe(true);
    expect(res.files.map((f) => f.path)).toEqual(['docs/a.md', 'docs/sub/b.md']);
  });
});

describe('manifests and outputs', () => {
  it('writes a phase manifest whose hashes match the files', async () => {
    write('plan.md', '# plan\nbody\n');
    write('src/a.ts', 'export {};\n');
    const { files } = await validateArtifacts({ workspace: ws, artifacts: [{ pattern: '**/*' }] });
    const { path: file } = await writeManifest({
      outputsDir: outputs,
      runId: 'run-1',
      phase: 'planning',
      checkpoint: 'CP1',
      label: 'post-planning',
      commit: 'abc123',
      files,
    });
    expect(file).toBe(path.join(outputs, 'run-1/planning/manifest-CP1.json'));
    const m = PhaseManifestSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
    expect(m).toMatchObject({
      runId: 'run-1',
      phase: 'planning',
      checkpoint: 'CP1',
      label: 'post-planning',
      commit: 'abc123',
    });
    expect(Date.parse(m.createdAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(m.artifacts.map((a) => a.path)).toEqual(['plan.md', 'src/a.ts']);
    for (const a of m.artifacts) expect(a.sha256).toBe(sha256(path.join(ws, a.path)));
    expect(m.totals).toEqual({ files: 2, bytes: 12 + 11 });
  });

  it('refuses run ids and phases that are not a single folder name', async () => {
    const base = { outputsDir: outputs, phase: 'p', checkpoint: 'CP1', label: 'l', commit: 'c', files: [] };
    await expect(writeManifest({ ...base, runId: '../escape' })).rejects.toThrow(
      'cannot be used as a folder name',
    );
    await expect(writeManifest({ ...base, runId: 'r', phase: 'a/b' })).rejects.toThrow(
      'cannot be used as a folder name',
    );
  });

  it('sums phase manifests into the run manifest and keeps earlier fields', async () => {
    write('a.txt', 'aaaa');
    write('b.txt', 'bb');
    const one = await validateArtifacts({ workspace: ws, artifacts: [{ pattern: 'a.txt' }] });
    const two = await validateArtifacts({ workspace: ws, artifacts: [{ pattern: '*.txt' }] });
    const common = { outputsDir: outputs, runId: 'r1', commit: 'c' };
    await writeManifest({
      ...common,
      phase: 'planning',
      checkpoint: 'CP1',
      label: 'post-planning',
      files: one.files,
    });
    await new Promise((r) => setTimeout(r, 5));
    await writeManifest({
      ...common,
      phase: 'development',
      checkpoint: 'CP2',
      label: 'post-development',
      files: two.files,
    });

    const first = await updateRunManifest({
      outputsDir: outputs,
      runId: 'r1',
      project: 'demo',
      status: 'running',
      costUsd: 0.5,
      usage: { input_tokens: 100 },
    });
    expect(first.manifest.phases.map((p) => p.phase)).toEqual(['planning', 'development']);
    expect(first.manifest.totals).toEqual({
      phases: 2,
      checkpoints: 2,
      artifacts: 3,
      bytes: 4 + 6,
      costUsd: 0.5,
      usage: { input_tokens: 100 },
    });
    expect(first.manifest.checkpoints.map((c) => c.id)).toEqual(['CP1', 'CP2']);

    const second = await updateRunManifest({
      outputsDir: outputs,
      runId: 'r1',
      status: 'done',
      phases: ['planning'],
    });
    const onDisk = RunManifestSchema.parse(JSON.parse(fs.readFileSync(second.path, 'utf8')));
    expect(onDisk).toEqual(second.manifest);
    expect(onDisk).toMatchObject({ project: 'demo', status: 'done', createdAt: first.manifest.createdAt });
    expect(onDisk.totals).toEqual({
      phases: 1,
      checkpoints: 1,
      artifacts: 1,
      bytes: 4,
      costUsd: 0.5,
      usage: { input_tokens: 100 },
    });
  });

  it('writes large outputs under the run folder with their hash', async () => {
    const res = await writeOutput({
      outputsDir: outputs,
      runId: 'r1',
      relPath: 'transcripts/dev.jsonl',
      content: 'é\n',
    });
    expect(res.path).toBe(path.join(outputs, 'r1/transcripts/dev.jsonl'));
    expect(res.bytes).toBe(3);
    expect(res.sha256).toBe(sha256(res.path));
    await expect(
      writeOutput({ outputsDir: outputs, runId: 'r1', relPath: '../x', content: '' }),
    ).rejects.toThrow('must be a relative path inside the workspace');
  });
});

describe('checkpointPhase', () => {
  const args = () => ({
    workspace: ws,
    outputsDir: outputs,
    runId: 'r1',
    phase: 'planning',
    checkpoint: 'CP1',
    label: 'post-planning',
  });

  it('validates, snapshots and writes the manifest', async () => {
    write('plan.md', '# plan\n');
    const res = await checkpointPhase({ ...args(), artifacts: [{ pattern: 'plan.md' }] });
    expect(res).toMatchObject({ ok: true, errors: [] });
    expect(res.commit).toMatch(/^[0-9a-f]{40}$/);
    const manifest = PhaseManifestSchema.parse(JSON.parse(fs.readFileSync(res.manifestPath!, 'utf8')));
    expect(manifest.commit).toBe(res.commit);
    expect(manifest.artifacts.map((a) => a.path)).toEqual(['plan.md']);
    // The result carries counts and the manifest's digest, never the list.
    expect(res.totals).toEqual(manifest.totals);
    expect(res).not.toHaveProperty('files');
    expect(res.manifestSha256).toBe(sha256(res.manifestPath!));
    const subject = await execa('git', [
      `--git-dir=${shadowGitDir(ws)}`,
      'log',
      '-1',
      '--format=%s',
      res.commit!,
    ]);
    expect(subject.stdout).toBe('CP1 post-planning');
  });

  it('takes no snapshot and writes no manifest when an artifact is missing', async () => {
    const before = await snapshotWorkspace({ workspace: ws, message: 'baseline' });
    const res = await checkpointPhase({ ...args(), artifacts: [{ pattern: 'plan.md' }] });
    expect(res).toEqual({
      ok: false,
      errors: ['artifact "plan.md": found 0 files, need at least 1'],
      totals: { files: 0, bytes: 0 },
    });
    const head = await execa('git', [`--git-dir=${shadowGitDir(ws)}`, 'rev-parse', 'HEAD']);
    expect(head.stdout).toBe(before.commit);
    expect(fs.existsSync(path.join(outputs, 'r1/planning/manifest-CP1.json'))).toBe(false);
  });
});

describe('createWorkspaceActivities', () => {
  const acts = createWorkspaceActivities({ logger: createLogger('silent') });

  it('runs the plain functions', async () => {
    write('x.txt', 'x');
    const snap = await acts.snapshotWorkspace({ workspace: ws, message: 'CP0' });
    write('x.txt', 'changed');
    await acts.restoreWorkspace({ workspace: ws, commit: snap.commit });
    expect(fs.readFileSync(path.join(ws, 'x.txt'), 'utf8')).toBe('x');
  });

  it('removes an index.lock left by a git that died (a killed attempt) and snapshots at once', async () => {
    write('x.txt', 'x');
    await acts.snapshotWorkspace({ workspace: ws, message: 'CP0' });
    // What a worker SIGKILLed during `git add` leaves behind: a fresh lock, and no git running.
    const lock = path.join(shadowGitDir(ws), 'index.lock');
    fs.writeFileSync(lock, '');
    write('x.txt', 'y');
    // Without the stat cache (a first staging, or after a restore) git stages the tree and needs its lock; a
    // few changed files under a valid cache are stored without git and leave the index alone.
    fs.rmSync(path.join(shadowGitDir(ws), 'orchestrator', 'index-stat'));
    const snap = await acts.snapshotWorkspace({ workspace: ws, message: 'CP1' });
    expect(snap.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it("updateRunManifest appends the run's last audit entries it carries, once even when retried", async () => {
    let head = { count: 0, head: GENESIS };
    const entries = [1, 2].map((n) => {
      const next = nextAuditEntry(head, {
        time: new Date(0),
        actor: 'workflow',
        kind: 'run',
        details: { n },
      });
      head = next.head;
      return next.entry;
    });
    const input = {
      outputsDir: outputs,
      runId: 'r1',
      status: 'completed',
      audit: { entries: head.count, head: head.head },
      auditEntries: entries,
    };
    const r = await acts.updateRunManifest(input);
    // A retry (the worker died after the write) appends nothing twice: appends are idempotent by seq.
    await acts.updateRunManifest(input);
    expect(r.path).toBe(path.join(outputs, 'r1', 'manifest.json'));
    const lines = fs
      .readFileSync(path.join(outputs, 'r1', AUDIT_FILE), 'utf8')
      .trim()
      .split('\n');
    expect(verifyAuditChain(lines, head)).toMatchObject({ ok: true, count: 2 });
    const manifest = RunManifestSchema.parse(JSON.parse(fs.readFileSync(r.path, 'utf8')));
    expect(manifest).not.toHaveProperty('auditEntries');
  });

  it("checkpointPhase with init sets a new workspace up first, as initWorkspace does (a run's CP0)", async () => {
    const fresh = path.join(tmp, 'new', 'ws');
    fs.mkdirSync(fresh, { recursive: true });
    fs.writeFileSync(path.join(fresh, 'a.txt'), 'a\n');
    const cp = await acts.checkpointPhase({
      workspace: fresh,
      outputsDir: outputs,
      runId: 'run-1',
      phase: 'baseline',
      checkpoint: 'CP0',
      label: 'baseline',
      artifacts: [],
      init: { holder: 'run-1' },
    });
    expect(cp.ok).toBe(true);
    expect((await readHold(fresh))?.runId).toBe('run-1');
    // The repository made in-process is one git reads: the commit is HEAD, with the file in its tree.
    const git = (...a: string[]) =>
      execa('git', [`--git-dir=${shadowGitDir(fresh)}`, `--work-tree=${fresh}`, ...a]).then((r) => r.stdout);
    expect(await git('rev-parse', 'HEAD')).toBe(cp.commit);
    expect(await git('ls-tree', '--name-only', 'HEAD')).toBe('a.txt');
    expect(await git('fsck', '--no-progress')).toBe('');
    // The next run's CP0 in the same workspace takes it over, as initWorkspace would.
    const again = await acts.checkpointPhase({
      workspace: fresh,
      outputsDir: outputs,
      runId: 'run-2',
      phase: 'baseline',
      checkpoint: 'CP0',
      label: 'baseline',
      artifacts: [],
      init: { holder: 'run-2' },
    });
    expect(again.ok).toBe(true);
    expect((await readHold(fresh))?.runId).toBe('run-2');
  });

  it('turns bad input and workspace errors into non-retryable ApplicationFailures', async () => {
    const bad = await acts
      .snapshotWorkspace({ workspace: 'relative/path', message: 'm' })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ApplicationFailure);
    expect(bad).toMatchObject({ type: 'InvalidActivityInput', nonRetryable: true });
    expect((bad as Error).message).toBe('snapshotWorkspace: workspace: must be an absolute path');

    await acts.initWorkspace({ workspace: ws });
    const unknown = await acts
      .restoreWorkspace({ workspace: ws, commit: 'deadbeef' })
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(ApplicationFailure);
    expect(unknown).toMatchObject({ type: 'UnknownCommit', nonRetryable: true });
  });
});

describe('examples/demo.yaml end to end', () => {
  it('every phase script produces its declared artifacts; rollback and fork restore earlier checkpoints', async () => {
    const spec = loadIntake(path.join(__dirname, '../../examples/demo.yaml'));
    const checkpoints: { phase: string; commit: string; files: string[] }[] = [];
    for (const [i, phase] of spec.phases.entries()) {
      for (const agent of phase.agents) {
        if (agent.backend !== 'script') {
          // Model agents run in the scenario tests and the demo; here their declared files stand in.
          if (agent.id === 'reviewer') fs.writeFileSync(path.join(ws, 'docs/REVIEW.md'), '# Review\n');
          continue;
        }
        const [cmd, ...argv] = agent.command!;
        // The demo stays quick by what its scripts do, not by a stopwatch (a loaded machine fails those).
        expect(agent.command!.join(' '), `${phase.name}/${agent.id}`).not.toMatch(/\bsleep\b/);
        await execa(cmd!, argv, { cwd: ws });
      }
      const res = await checkpointPhase({
        workspace: ws,
        outputsDir: outputs,
        runId: 'demo',
        phase: phase.name,
        checkpoint: `CP${i + 1}`,
        label: `post-${phase.name}`,
        artifacts: phase.artifacts,
      });
      expect(res.errors, phase.name).toEqual([]);
      const manifest = PhaseManifestSchema.parse(JSON.parse(fs.readFileSync(res.manifestPath!, 'utf8')));
      checkpoints.push({
        phase: phase.name,
        commit: res.commit!,
        files: manifest.artifacts.map((f) => f.path),
      });
    }
    const all = checkpoints.flatMap((c) => c.files);
    for (const f of [
      'plan.md',
      'ARCHITECTURE.md',
      'data/schema.sql',
      'src/forecast.ts',
      'src/dashboard.ts',
      'tests/report.md',
      'README.md',
    ]) {
      expect(all).toContain(f);
    }
    expect(fs.readFileSync(path.join(ws, 'tests/report.md'), 'utf8')).toContain('0 failed');

    const run = await updateRunManifest({ outputsDir: outputs, runId: 'demo', project: spec.project.name });
    expect(run.manifest.totals.phases).toBe(6);

    // Roll back to CP2 (post-architecture): later phases' files are gone.
    const acts = createWorkspaceActivities({ logger: createLogger('silent') });
    await acts.restoreWorkspace({ workspace: ws, commit: checkpoints[1]!.commit });
    expect(fs.existsSync(path.join(ws, 'ARCHITECTURE.md'))).toBe(true);
    expect(fs.existsSync(path.join(ws, 'src'))).toBe(false);
    expect(fs.existsSync(path.join(ws, 'README.md'))).toBe(false);

    // Fork from CP4 (post-development): the new workspace has the code but no QA report yet.
    const fork = path.join(tmp, 'fork');
    await acts.materializeCheckpoint({
      sourceWorkspace: ws,
      commit: checkpoints[3]!.commit,
      targetWorkspace: fork,
    });
    expect(fs.readdirSync(path.join(fork, 'src')).sort()).toEqual([
      'cli.ts',
      'dashboard.ts',
      'forecast.ts',
      'index.ts',
    ]);
    expect(fs.existsSync(path.join(fork, 'tests'))).toBe(false);
  });
});
