/**
 * Governance gates at phase boundaries on the real dev server: the client policy named by the intake takes
 * effect, a failing gate's evidence reaches the audit trail (query and audit.jsonl), and each `on_fail`
 * (retry_phase, rollback, pause_for_approval, fail) does what it says.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIntake } from '../../config/intake';
import { AuditEntrySchema, type AuditEntry } from '../../src/shared/audit';
import { approveUpdate, auditQuery, phaseResultsQuery, statusQuery } from '../../src/shared/messages';
import type { RunStatus } from '../../src/shared/run';
import { approveRun, queryStatus, startRun } from '../../src/runs';
import { cliEnv, runCli } from '../harness/cli';
import { Gates, waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

function auditFile(t: TestEnv, runId: string): AuditEntry[] {
  return fs
    .readFileSync(path.join(t.config.outputsDir, runId, 'audit.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => AuditEntrySchema.parse(JSON.parse(l)));
}

const gateEntries = (entries: AuditEntry[], gate: string) =>
  entries.filter((e) => e.kind === 'gate' && e.details.gate === gate);

/** A one-phase intake: a `qa` script that leaves a Node project with 85% line coverage. */
function coverageIntake(gates: Gates, client?: string): string {
  const work = [
    `printf '{"name":"w","scripts":{"test":"true"}}' > package.json`,
    `mkdir -p coverage`,
    `printf '{"total":{"lines":{"pct":85}}}' > coverage/coverage-summary.json`,
  ].join(' && ');
  return [
    `project: { name: governed${client ? `, client: ${client}` : ''} }`,
    'phases:',
    '  - name: qa',
    `    agents: [{ role: qa, backend: script, command: ${JSON.stringify(gates.script('qa', work, false))} }]`,
    '    artifacts: []',
  ].join('\n');
}

describe('governance gates in projectWorkflow', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it("the intake's client policy overrides a default gate's threshold: 85% passes the default, fails acme-corp's 90%", async () => {
    const plain = parseIntake(coverageIntake(new Gates(tempDir('orch-gates-'))), 'plain.yaml');
    const acmeGates = new Gates(tempDir('orch-gates-'));
    const acme = parseIntake(coverageIntake(acmeGates, 'acme-corp'), 'acme.yaml');
    const threshold = (s: typeof plain) => s.phases[0]!.gates.find((g) => g.id === 'coverage')?.threshold;
    expect(threshold(plain)).toBe(80);
    expect(threshold(acme)).toBe(90);

    const ok = await startRun(t.client, {
      spec: plain,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const okHandle = t.client.workflow.getHandle(ok.runId);
    expect(((await okHandle.result()) as { state: string }).state).toBe('completed');
    const [passed] = gateEntries(await okHandle.query(auditQuery), 'coverage');
    expect(passed?.details).toMatchObject({
      passed: true,
      summary: '85 >= 80',
      evidence: { value: 85, threshold: 80 },
    });
    expect(gateEntries(auditFile(t, ok.runId), 'tests')[0]?.details).toMatchObject({
      kind: 'tool',
      passed: true,
    });

    const bad = await startRun(t.client, {
      spec: acme,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const badHandle = t.client.workflow.getHandle(bad.runId);
    const err = await badHandle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as { message: string; type?: string };
    expect(cause.type).toBe('PhaseFailed');
    expect(cause.message).toContain('gate "coverage" (metric) failed: 85 not >= 90');
    expect(cause.message).toContain('gate "coverage": gave up after 2 retry_phase attempt(s)');
    // on_fail retry_phase with max_retries 2: three attempts of the phase, each a failed gate.
    expect(acmeGates.count('qa')).toBe(3);
    const results = await badHandle.query(phaseResultsQuery);
    expect(results.map((r) => [r.attempt, r.status])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
      [3, 'failed'],
    ]);
    expect(results[2]!.errors[0]).toMatch(
      /^gate "coverage" \(metric\) failed: 85 not >= 90; evidence: \{.*"threshold":90/,
    );
    const decisions = auditFile(t, bad.runId)
      .filter((e) => e.kind === 'gate' && e.details.event === 'decision')
      .map((e) => e.details.action);
    expect(decisions).toEqual(['retry_phase', 'retry_phase', 'fail']);
  });

  it('pause_for_approval: a failing tool gate pauses the run with its output in the audit until `approve`', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const spec = parseIntake(
      [
        'project: { name: approval }',
        'phases:',
        '  - name: release',
        `    agents: [{ role: releaser, backend: script, command: ${JSON.stringify(gates.script('release', 'echo v1 > VERSION', false))} }]`,
        '    artifacts: [VERSION]',
        '    gates:',
        '      - id: smoke',
        '        kind: tool',
        "        command: [sh, -c, 'echo smoke-output-4711; echo on-stderr >&2; exit 3']",
        '        on_fail: pause_for_approval',
      ].join('\n'),
      'approval.yaml',
    );
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const paused = await waitFor(async () => {
      const s: RunStatus = await queryStatus(t.client, input.runId);
      return s.state === 'paused' ? s : undefined;
    }, 'paused for approval');
    expect(paused.pausedReason).toContain('phase "release" waits for approval: gate "smoke" failed (`sh -c');
    expect(paused.pausedReason).toContain(
      `orchestrator governance approve --run ${input.runId} --note <text>`,
    );
    expect(paused.checkpoints).toEqual([]);

    // The command's output is in the audit, in memory (query) and already on disk.
    const [smoke] = gateEntries(await handle.query(auditQuery), 'smoke');
    expect(smoke?.details).toMatchObject({
      passed: false,
      kind: 'tool',
      on_fail: 'pause_for_approval',
      evidence: { exit_code: 3 },
    });
    expect((smoke?.details.evidence as { output_tail: string }).output_tail).toContain('smoke-output-4711');
    expect((smoke?.details.evidence as { output_tail: string }).output_tail).toContain('on-stderr');
    const onDisk = await waitFor(() => {
      if (!fs.existsSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'))) return undefined;
      const found = gateEntries(auditFile(t, input.runId), 'smoke');
      return found.length > 0 ? found : undefined;
    }, 'the gate in audit.jsonl');
    expect(onDisk).toEqual([smoke]);
    const cli = await runCli(['governance', 'audit', '--run', input.runId], cliEnv(t));
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('smoke-output-4711');
    expect(cli.stdout).toMatch(/gate\s+phase=release attempt=1 gate=smoke kind=tool passed=false/);

    // Still waiting a while later: nothing but `approve` moves it.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await handle.query(statusQuery)).state).toBe('paused');
    const empty = await handle
      .executeUpdate(approveUpdate, { args: [{ note: '  ' }] })
      .catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((empty as WorkflowUpdateFailedError).cause?.message).toBe(
      'invalid approve request: note: must not be empty',
    );

    const approved = await approveRun(t.client, input.runId, {
      note: 'smoke env is down; verified by hand',
      approver: 'user:lead',
    });
    expect(approved).toEqual({ phase: 'release', gates: ['smoke'] });
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const [result] = await handle.query(phaseResultsQuery);
    expect(result!.checkpoint).toBe('CP1');
    expect(result!.errors[0]).toMatch(
      /^approved by user:lead \(smoke env is down; verified by hand\): gate "smoke" \(tool\) failed/,
    );
    const approvals = auditFile(t, input.runId).filter((e) => e.kind === 'approval');
    expect(approvals.map((e) => [e.actor, e.details.event, e.details.note])).toEqual([
      ['workflow', 'requested', undefined],
      ['user:lead', 'approved', 'smoke env is down; verified by hand'],
    ]);
    await expect(approveRun(t.client, input.runId, { note: 'again' })).rejects.toThrow(
      `approval refused: run ${input.runId} has already finished`,
    );
  });

  it('retry_phase re-runs on top of the work; rollback restores the phase start or the previous checkpoint', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const ws = tempDir('orch-ws-');
    const phase = (name: string, work: string, check: string, onFail: string) => [
      `  - name: ${name}`,
      `    agents: [{ role: dev, backend: script, command: ${JSON.stringify(gates.script(name, work, false))} }]`,
      '    artifacts: []',
      `    gates: [{ id: ${name}-ok, kind: tool, command: [sh, -c, ${JSON.stringify(check)}], on_fail: ${onFail} }]`,
    ];
    const spec = parseIntake(
      [
        'project: { name: remedies }',
        'phases:',
        // No checkpoint before it: a rollback goes back to the snapshot taken at the phase start.
        ...phase('build', 'touch junk-$n; [ $n -ge 2 ] && touch good; true', 'test -f good', 'rollback'),
        ...phase('check', 'touch c-$n', 'test -f c-2', 'retry_phase'),
        ...phase('ship', 'touch s-$n', 'test -f s-2', 'rollback'),
      ].join('\n'),
      'remedies.yaml',
    );
    const input = await startRun(t.client, {
      spec,
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const results = await handle.query(phaseResultsQuery);
    expect(results.map((r) => [r.phase, r.attempt, r.status])).toEqual([
      ['build', 1, 'rolled_back'],
      ['build', 2, 'completed'],
      ['check', 1, 'failed'],
      ['check', 2, 'completed'],
      ['ship', 1, 'rolled_back'],
      ['ship', 2, 'completed'],
    ]);
    expect(results[0]!.errors[0]).toMatch(/^gate "build-ok" \(tool\) failed: `sh -c test -f good` exited 1/);
    const files = fs
      .readdirSync(ws)
      .filter((f) => !f.startsWith('.'))
      .sort();
    // junk-1 and s-1 were rolled back; c-1 stays (a retry builds on the attempt before it).
    expect(files).toEqual(['c-1', 'c-2', 'good', 'junk-2', 's-2']);
    const status = await handle.query(statusQuery);
    expect(status.rollbacks.map((r) => r.to)).toEqual(['start of build', 'CP2']);
    expect(status.checkpoints.filter((c) => !c.rolledBack).map((c) => [c.id, c.phase])).toEqual([
      ['CP1', 'build'],
      ['CP2', 'check'],
      ['CP3', 'ship'],
    ]);
    const audit = auditFile(t, input.runId);
    expect(audit.filter((e) => e.kind === 'rollback').map((e) => [e.details.to, e.details.source])).toEqual([
      ['start of build', 'gate'],
      ['CP2', 'gate'],
    ]);
    expect(
      audit
        .filter((e) => e.kind === 'gate' && e.details.event === 'decision')
        .map((e) => [e.details.phase, e.details.action]),
    ).toEqual([
      ['build', 'rollback'],
      ['check', 'retry_phase'],
      ['ship', 'rollback'],
    ]);
  });
});
