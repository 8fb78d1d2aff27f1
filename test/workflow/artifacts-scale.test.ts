/**
 * Artifact lists stay out of history: a phase with 20,000 artifacts checkpoints, completes and adds only
 * counts and references to history. And a run that fails for a reason its own state does not show (here:
 * terminated) makes `run start --wait` print the reason and exit non-zero.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PhaseManifestSchema } from '../../activities/workspace';
import { phaseResultsQuery, statusQuery } from '../../src/shared/messages';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { cliEnv, runCli } from '../harness/cli';
import { Gates, waitFor } from '../harness/gates';
import { universalGates } from '../harness/universal-gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const FILES = 20_000;

describe('artifacts at scale', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it(`a phase whose artifacts match ${FILES} files completes, and its history stays under 100 KB`, async () => {
    const workspace = tempDir('orch-ws-many-');
    const make = `const fs=require('fs');for(let d=0;d<100;d++){fs.mkdirSync('gen/d'+d,{recursive:true});for(let i=0;i<${FILES / 100};i++)fs.writeFileSync('gen/d'+d+'/f'+i+'.txt','file '+d+'/'+i+'\\n')}`;
    const spec = ProjectSpecSchema.parse({
      project: { name: 'many artifacts' },
      phases: [
        {
          name: 'generate',
          agents: [{ role: 'generator', backend: 'script', command: ['node', '-e', make] }],
          artifacts: [{ pattern: 'gen/**/*.txt', min_count: FILES }],
          // The universal gates, as every run gets them (test/harness/universal-gates reads them from
          // config/governance/universal.yaml): evidence stays capped whatever the file count.
          gates: universalGates(),
        },
      ],
    });
    const input = await startRun(t.client, {
      spec,
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    const summary = (await handle.result()) as { state: string };
    expect(summary.state).toBe('completed');

    const [result] = await handle.query(phaseResultsQuery);
    expect(result?.artifactTotals?.files).toBe(FILES);
    expect(result?.artifacts).toBeUndefined();
    const manifest = PhaseManifestSchema.parse(JSON.parse(fs.readFileSync(result!.outputRef!, 'utf8')));
    expect(manifest.artifacts).toHaveLength(FILES);
    expect(manifest.totals.files).toBe(FILES);

    const history = await handle.fetchHistory();
    const bytes = Buffer.byteLength(JSON.stringify(history));
    expect(bytes).toBeLessThan(100 * 1024);
  }, 600_000);

  it('`run start --wait` prints why a run ended and exits non-zero, even when its state says running', async () => {
    const gates = new Gates(tempDir('orch-gates-'));
    const workspace = tempDir('orch-ws-term-');
    const intakeDir = tempDir('orch-intake-');
    const intake = path.join(intakeDir, 'intake.yaml');
    const runId = `terminated-${Date.now()}`;
    fs.writeFileSync(
      intake,
      [
        'project: { name: terminated }',
        'phases:',
        '  - name: work',
        `    agents: [{ role: w, backend: script, command: ${JSON.stringify(gates.script('work', 'true'))} }]`,
        '',
      ].join('\n'),
    );
    const cli = runCli(
      ['run', 'start', '--intake', intake, '--workspace', workspace, '--run-id', runId, '--wait'],
      cliEnv(t),
      // Reading a closed run's status replays it on a worker: slow on a loaded CI machine (seen over 60 s).
      200_000,
    );
    const handle = t.client.workflow.getHandle(runId);
    await waitFor(
      async () => (await handle.query(statusQuery)).agents.some((a) => a.state === 'running'),
      'the agent to start',
    );
    await handle.terminate('operator pulled the plug');
    const r = await cli;
    // On failure, say what the CLI printed on stderr (killed by the timeout, or an error of its own).
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stdout, r.stderr).toMatch(/terminated: operator pulled the plug/);
  }, 300_000);
});
