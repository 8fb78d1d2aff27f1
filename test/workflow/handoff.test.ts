/**
 * Skills and context hand-offs on the real dev server, checked at the local model server's own record of
 * the requests it received (never our logs): an api agent whose task mentions forecasting gets the
 * forecasting methodology in its first request and the audit names the skill; phase 2's first request
 * carries phase 1's summary and not its transcript; a phase's `summaries_from` selects what it receives;
 * a `retry_phase` retry's first request names the failed gate and its output; each phase leaves
 * outputs/<run>/<phase>/summary.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/env';
import { parseIntake } from '../../config/intake';
import type { ModelServer, ServedRequest } from '../../src/modelserver';
import { preflight } from '../../src/preflight';
import { auditQuery, budgetQuery, statusQuery } from '../../src/shared/messages';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { ledgerSpend, servedSince, tallyMicroUsd } from '../harness/money';
import { startRun } from '../../src/runs';
import { createModelTestEnv, type ModelTestEnv } from '../harness/model-env';
import { tempDir, type TestEnv } from '../harness/temporal';

describe('skills and context hand-offs', () => {
  let t: TestEnv;
  let server: ModelServer;
  let env: ModelTestEnv;
  beforeAll(async () => {
    env = await createModelTestEnv();
    ({ t, server } = env);
  });
  afterAll(async () => env?.close());

  it('methodology and summaries reach the first request; transcripts do not; a retry is told the failed gate', async () => {
    const since = server.requests.length;
    const yaml = [
      'project: { name: handoff }',
      'phases:',
      '  - name: study',
      '    agents:',
      '      - role: analyst',
      '        backend: api',
      '        prompt: "Study the sales data.\\n@write notes.txt TRANSCRIPT-ONLY-7f3\\n@say STUDY-SUMMARY-91c: notes written"',
      '    artifacts: [notes.txt]',
      '  - name: modelling',
      '    agents:',
      '      - role: analyst',
      '        backend: api',
      '        prompt: "Forecast demand for next quarter.\\n@bash echo run >> count.txt\\n@say MODEL-SUMMARY-44d"',
      '    artifacts: [count.txt]',
      '    gates:',
      '      - { id: two-runs, kind: tool, command: [sh, -c, "echo COUNT-IS-$(wc -l < count.txt); test $(wc -l < count.txt) -ge 2"], on_fail: retry_phase, max_retries: 1 }',
      '  - name: report',
      '    summaries_from: [study]',
      '    agents:',
      '      - role: writer',
      '        backend: api',
      '        prompt: "Write the report.\\n@say report done"',
    ].join('\n');
    const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
    const spec = await preflight(parseIntake(yaml, 'intake.yaml'), { config, rehearse: true });
    const input = await startRun(t.client, {
      spec,
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');

    const served = server.requests.slice(since).filter((r) => r.endpoint === 'messages');
    // The first request of each agent start: a new task text (a retry's differs by its note) in the phase.
    const firsts = (phase: string): ServedRequest[] => {
      const seen = new Set<string>();
      return served.filter((r) => {
        if (!r.system.includes(`Phase: ${phase}`) || seen.has(r.firstUserText)) return false;
        seen.add(r.firstUserText);
        return true;
      });
    };
    const [study] = firsts('study');
    const modelling = firsts('modelling');
    const [report] = firsts('report');
    expect(study && report && modelling.length === 2).toBe(true);

    // Skills: the forecasting task gets the methodology as ordered steps; the study task gets none.
    expect(modelling[0]!.system).toContain(
      'Methodology: skill forecasting (version 1.0). Follow these steps in order:\n1. Profile the history',
    );
    expect(modelling[0]!.system).toMatch(/\n6\. Report point forecasts with prediction intervals/);
    expect(study!.system).not.toContain('Methodology:');
    const spawns = (await handle.query(auditQuery)).filter((e) => e.kind === 'spawn');
    expect(spawns.find((e) => e.details.phase === 'modelling')?.details.skills).toEqual([
      { skill: 'forecasting@1.0', because: 'trigger "forecast" in task' },
    ]);
    expect(spawns.find((e) => e.details.phase === 'study')?.details.skills).toBeUndefined();
    // The workflow's own status, by query: queryStatus would answer from the closed run's record (which
    // keeps no agent rows) when a loaded worker's replay misses its 1.5 s deadline, as happened in CI.
    const status = await handle.query(statusQuery);
    expect(
      status.agents.find((a) => a.phase === 'modelling')?.skills,
      JSON.stringify(
        status.agents.map((a) => ({ id: a.id, phase: a.phase, state: a.state, skills: a.skills })),
      ),
    ).toEqual(['forecasting@1.0']);

    // Hand-off: phase 2 receives phase 1's summary, not its transcript (the tool call's content).
    expect(modelling[0]!.system).toContain('STUDY-SUMMARY-91c: notes written');
    expect(
      served
        .filter((r) => r.system.includes('Phase: study'))
        .some((r) => JSON.stringify(r).includes('TRANSCRIPT-ONLY-7f3')),
    ).toBe(true);
    for (const r of [...modelling, report!]) expect(JSON.stringify(r)).not.toContain('TRANSCRIPT-ONLY-7f3');
    // The retry's first request names the failed gate and its output; the first attempt's does not.
    expect(modelling[0]!.firstUserText).not.toContain('gate "two-runs"');
    expect(modelling[1]!.firstUserText).toContain('attempt 1 failed these gates');
    expect(modelling[1]!.firstUserText).toContain('gate "two-runs" (tool) failed');
    expect(modelling[1]!.firstUserText).toContain('COUNT-IS-1');
    // summaries_from: [study] selects study's summary and leaves modelling's out.
    expect(report!.system).toContain('STUDY-SUMMARY-91c');
    expect(report!.system).not.toContain('MODEL-SUMMARY-44d');

    // Each phase ends with its summary on disk.
    const summary = (phase: string) =>
      fs.readFileSync(path.join(t.config.outputsDir, input.runId, phase, 'summary.md'), 'utf8');
    expect(summary('study')).toBe(
      '# Summary of phase "study"\n\n## analyst (analyst)\n\nSTUDY-SUMMARY-91c: notes written\n',
    );
    expect(summary('modelling')).toContain('# Summary of phase "modelling" (attempt 2)');
  }, 300_000);

  it('a 4-turn api agent writes its stable prefix to the cache on turn 1 and reads it on turns 2-4; money stays exact', async () => {
    const since = server.requests.length;
    const tallyBefore = await tallyMicroUsd(server);
    const input = await startRun(t.client, {
      spec: ProjectSpecSchema.parse({
        project: { name: 'cache' },
        constraints: { budget_usd: 10 },
        phases: [
          {
            name: 'development',
            agents: [
              {
                role: 'developer',
                backend: 'api',
                prompt:
                  'CACHE-RUN-5e1 three files.\n@write a.txt 1\n@write b.txt 2\n@write c.txt 3\n@say done',
              },
            ],
          },
        ],
      }),
      workspace: tempDir('orch-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const turns = server.requests
      .slice(since)
      .filter((r) => r.endpoint === 'messages' && r.firstUserText.includes('CACHE-RUN-5e1'));
    expect(turns.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const [first, ...rest] = turns.map((r) => r.usage!);
    expect(first!.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(first!.cache_read_input_tokens).toBe(0);
    for (const u of rest) {
      expect(u.cache_read_input_tokens).toBe(first!.cache_creation_input_tokens);
      expect(u.cache_creation_input_tokens).toBe(0);
    }
    // The ledger holds what the server served, to the micro-dollar, and its report shows the cache reads.
    const served = servedSince(server, since);
    expect((await tallyMicroUsd(server)) - tallyBefore).toBe(served.microUsd);
    const budget = await handle.query(budgetQuery);
    expect(ledgerSpend(budget.ledger).microUsd).toBe(served.microUsd);
    expect(budget.report.run.cacheReadTokens).toBe(3 * first!.cache_creation_input_tokens);
  }, 300_000);
});
