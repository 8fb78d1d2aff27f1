/**
 * Issue 14, the v2 CLI without a server: `init --template`, the usage errors of the new commands, the run
 * named by argument, `--run` or `--workflow`, the prune decision, and the plain-text failure output.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify, stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { listAgentPresets } from '../../config/agents';
import { validatePolicies } from '../../config/governance';
import { loadIntake } from '../../config/intake';
import { localPolicyDir } from '../../config/templates';
import { chosenRunId } from '../../src/cli/context';
import { renderStatus, renderSummary } from '../../src/cli/render';
import { planPrune } from '../../src/prune';
import { phaseFailureOf, recordedResults, recordedStatus, type RunRecord } from '../../src/run-record';
import { matchesRunLabels } from '../../src/runs';
import type { Checkpoint, RunStatus } from '../../src/shared/run';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** The text a person reads: picocolors colours output wherever CI is set, as on CI itself. */
const plain = (text: string): string => stripVTControlCharacters(text);
const exec = promisify(execFile);
const cli = (args: string[], cwd = ROOT) =>
  exec(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', TEMPORAL_ADDRESS: '127.0.0.1:1' },
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'orch-v2-unit-'));

/** Every file under `dir`, relative, sorted. */
function files(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

describe('init --template', { timeout: 120_000 }, () => {
  it.each([
    ['analytics', 'data', ['planning', 'architecture', 'data', 'development', 'qa', 'documentation']],
    ['webapp', 'developer', ['planning', 'architecture', 'development', 'qa', 'documentation']],
  ])(
    '%s writes an intake, agents and a complete governance folder that run start accepts',
    async (template, role, phases) => {
      const dir = path.join(tmp(), 'project');
      const r = await cli(['init', '--template', template, '--dir', dir]);
      expect(r.code, r.stderr).toBe(0);
      expect(files(dir)).toEqual([
        `agents/${role}.yaml`,
        'governance/clients/my-client.yaml',
        'governance/default.yaml',
        'governance/universal.yaml',
        'intake.yaml',
      ]);
      expect(r.stdout).toContain('next: orchestrator run start --intake');
      // The governance folder beside the intake is the one its runs use, and it is valid.
      const policyDir = localPolicyDir(path.join(dir, 'intake.yaml'));
      expect(policyDir).toBe(path.join(dir, 'governance'));
      expect(validatePolicies({ dir: policyDir })).toEqual([]);
      const spec = loadIntake(path.join(dir, 'intake.yaml'), undefined, { policyDir });
      expect(spec.phases.map((p) => p.name)).toEqual(phases);
      expect(spec.project.client).toBe('my-client');
      const gateIds = spec.phases.flatMap((p) => p.gates.map((g) => `${p.name}/${String(g.id)}`));
      expect(gateIds).toContain(
        template === 'analytics' ? 'data/data-schema' : 'development/no-plain-passwords',
      );
      expect(listAgentPresets(path.join(dir, 'agents')).map((p) => p.id)).toEqual([role]);
    },
  );

  it('refuses to overwrite a file, writes nothing, and names the files', async () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'intake.yaml'), 'mine\n');
    const r = await cli(['init', '--template', 'analytics'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${fs.realpathSync(dir)} already has intake.yaml; nothing was written`);
    expect(files(dir)).toEqual(['intake.yaml']);
    expect(fs.readFileSync(path.join(dir, 'intake.yaml'), 'utf8')).toBe('mine\n');
  });

  it('an unknown template is a usage error naming the templates', async () => {
    const dir = tmp();
    const r = await cli(['init', '--template', 'nope', '--dir', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('orchestrator: --template: unknown template "nope" (one of: analytics, webapp)\n');
    expect(files(dir)).toEqual([]);
  });
});

describe('usage errors of the v2 commands', { timeout: 120_000 }, () => {
  it('runs prune --older-than takes a duration; anything else is exit 2 naming it', async () => {
    for (const bad of ['7', 'soon', '-1d', '7 parsecs']) {
      const r = await cli(['runs', 'prune', '--older-than', bad, '--dry-run']);
      expect(r.code, bad).toBe(2);
      expect(r.stderr, bad).toContain(`'--older-than <duration>' argument '${bad}' is invalid`);
      expect(r.stderr, bad).toContain(`(got "${bad}")`);
    }
    const missing = await cli(['runs', 'prune']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--older-than <duration>' not specified");
  });

  it('--workflow is checked like a run id; run list --state names its choices', async () => {
    const bad = await cli(['governance', 'audit', '--workflow', '../etc']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^orchestrator: --workflow: run id "\.\.\/etc" /);
    const state = await cli(['run', 'list', '--state', 'sleeping']);
    expect(state.code).toBe(2);
    expect(state.stderr).toContain('Allowed choices are running, completed');
  });
});

describe('which run a run-scoped command acts on', () => {
  it('the one named by argument, --run or --workflow; none: the latest; two different: a usage error', () => {
    expect(chosenRunId({})).toBeUndefined();
    expect(chosenRunId({ workflow: 'proj-123' })).toBe('proj-123');
    expect(chosenRunId({ run: 'proj-123', workflow: 'proj-123' })).toBe('proj-123');
    expect(chosenRunId({ arg: 'a' })).toBe('a');
    expect(() => chosenRunId({ arg: 'a', workflow: 'b' })).toThrow(
      'the run is named twice with different ids: the run id argument "a", --workflow "b"',
    );
    try {
      chosenRunId({ run: 'a', workflow: 'b' });
    } catch (err) {
      expect((err as { exitCode: number }).exitCode).toBe(2);
    }
  });

  it('run list --client/--project match names as people type them', () => {
    const labels = { project: 'Customer Analytics Platform', client: 'acme-corp' };
    expect(matchesRunLabels(labels, {})).toBe(true);
    expect(matchesRunLabels(labels, { project: 'customer analytics platform ' })).toBe(true);
    expect(matchesRunLabels(labels, { client: 'acme-corp', project: 'Customer Analytics Platform' })).toBe(
      true,
    );
    expect(matchesRunLabels(labels, { client: 'globex' })).toBe(false);
    expect(matchesRunLabels({ project: 'x' }, { client: 'acme-corp' })).toBe(false);
  });
});

describe('the prune decision', () => {
  const now = Date.parse('2026-12-01T00:00:00Z');
  const day = 86_400_000;
  const ended = (runId: string, daysAgo: number, workspace: string) => ({
    runId,
    ended: 'completed' as const,
    closedAt: new Date(now - daysAgo * day),
    outputsDir: '/o',
    workspace,
  });

  it('takes ended runs old enough, never an open one, and keeps a workspace a kept run uses', () => {
    const runs = [
      ended('old', 10, '/ws/a'),
      ended('old-shared', 9, '/ws/b'),
      ended('recent', 1, '/ws/b'),
      { runId: 'open', outputsDir: '/o', workspace: '/ws/c' },
      ended('old-beside-open', 30, '/ws/c'),
      ended('../evil', 30, '/ws/d'),
    ];
    expect(planPrune(runs, 7 * day, now)).toEqual([
      {
        runId: 'old',
        state: 'completed',
        closedAt: '2026-11-21T00:00:00.000Z',
        outputs: '/o/old',
        shadow: '/ws/a/.orchestrator/shadow.git',
      },
      {
        runId: 'old-shared',
        state: 'completed',
        closedAt: '2026-11-22T00:00:00.000Z',
        outputs: '/o/old-shared',
      },
      {
        runId: 'old-beside-open',
        state: 'completed',
        closedAt: '2026-11-01T00:00:00.000Z',
        outputs: '/o/old-beside-open',
      },
    ]);
    // 0d: every ended run, still never the open one.
    expect(planPrune(runs, 0, now).map((r) => r.runId)).toEqual([
      'old',
      'old-shared',
      'recent',
      'old-beside-open',
    ]);
    expect(planPrune(runs, 0, now).find((r) => r.runId === 'recent')?.shadow).toBe(
      '/ws/b/.orchestrator/shadow.git',
    );
  });
});

describe('plain-text failure output', () => {
  const cp = (id: string, phaseIndex: number, label: string): Checkpoint => ({
    id,
    label,
    phase: label.replace('post-', ''),
    phaseIndex,
    commit: 'abcdef0123456789',
    manifestPath: `/o/r/${id}.json`,
    createdAt: '2026-11-30T00:00:00.000Z',
    runId: 'r',
  });
  const status: RunStatus = {
    runId: 'r',
    project: 'p',
    state: 'failed',
    currentPhase: 'architecture',
    step: 'step 2/2',
    phases: [
      { name: 'planning', status: 'completed', attempt: 1, checkpoint: 'CP1' },
      {
        name: 'architecture',
        status: 'failed',
        attempt: 1,
        errors: [
          'artifact "ARCHITECTURE.md": found 0 files',
          'gate "lint" (tool) failed: exit 3\nsrc/a.ts:1 unexpected any',
        ],
      },
    ],
    agents: [
      {
        id: 'architect',
        role: 'architect',
        phase: 'architecture',
        workflowId: 'w',
        state: 'failed',
        error: 'the API answered 429',
        errorType: 'RateLimited',
      },
    ],
    checkpoints: [cp('CP1', 0, 'post-planning')],
    baseline: cp('CP0', -1, 'baseline'),
    rollbacks: [],
    totals: {
      usage: {
        input_tokens: 0,
        output_tokens: 0,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
      costUsd: 0,
      tokens: 0,
    },
    workspace: '/ws',
    outputsDir: '/o',
    continuedAsNew: 0,
    error: 'failed: phase architecture failed',
  };

  it('says why the phase failed: the missing artifact, the gate with its output, the classified agent error', () => {
    const text = plain(renderStatus(status));
    expect(text).toContain('✗ Step 2/2 architecture');
    expect(text).toContain('✗ architect (architect) failed [RateLimited] the API answered 429');
    expect(text).toContain('why: artifact "ARCHITECTURE.md": found 0 files');
    expect(text).toContain('why: gate "lint" (tool) failed: exit 3 ⏎ src/a.ts:1 unexpected any');
    expect(text).toContain('✗ failed: phase architecture failed');
  });

  it('the summary lists CP0 with the phases checkpoints, as checkpoint list does', () => {
    const text = plain(renderSummary({ ...status, state: 'completed' }));
    expect(text).toContain('Checkpoints: CP0 baseline, CP1 post-planning');
    const rows = text.split('\n').filter((l) => /^ {2}CP\d/.test(l));
    expect(rows.map((l) => l.trim().split(/\s+/)[0])).toEqual(['CP0', 'CP1']);
  });
});

describe('a failed run read from its record', () => {
  it("keeps the failed phase and its reasons from the PhaseFailed failure's details", () => {
    const failure = Object.assign(new Error('phase "build" failed'), {
      details: [{ phase: 'build', errors: ['gate "smoke" (tool) failed: exit 3', 7] }],
    });
    const wrapped = Object.assign(new Error('Workflow execution failed'), { cause: failure });
    expect(phaseFailureOf(wrapped)).toEqual({
      phase: 'build',
      errors: ['gate "smoke" (tool) failed: exit 3'],
    });
    expect(phaseFailureOf(new Error('no details'))).toBeUndefined();
    const rec = {
      description: { status: { name: 'FAILED' } },
      memo: { project: 'p', outputsDir: '/o', workspace: '/ws' },
      failure: { phase: 'build', errors: ['gate "smoke" (tool) failed: exit 3'] },
    } as unknown as RunRecord;
    expect(recordedResults(rec)).toMatchObject([
      { phase: 'build', status: 'failed', errors: ['gate "smoke" (tool) failed: exit 3'] },
    ]);
    const manifestRec = {
      ...rec,
      manifest: { phases: [], checkpoints: [], totals: { usage: {}, costUsd: 0 } },
    };
    const s = recordedStatus('r', manifestRec as unknown as RunRecord);
    expect(s?.phases).toEqual([
      { name: 'build', status: 'failed', attempt: 1, errors: ['gate "smoke" (tool) failed: exit 3'] },
    ]);
    expect(plain(renderStatus(s!))).toContain('why: gate "smoke" (tool) failed: exit 3');
    // The step as the workflow's own status says it: `run status --json` reads the same either way.
    expect(s?.step).toBe('step 1/1');
  });
});
