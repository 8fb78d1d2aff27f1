/**
 * Issue 14: the v2 architecture's own intake, byte for byte as the issue quotes it, runs with
 * `run start --rehearse` through the six presets to CP1–CP6. The real `orchestrator` CLI starts its own
 * local model server and worker; every agent is the real `claude` CLI, and each preset phase's artifacts
 * are written by Claude Code's own Write tool.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunStatus } from '../../src/shared/run';
import { runCli } from '../harness/cli';
import { freshNamespace } from '../harness/namespace';
import { tempDir } from '../harness/temporal';

const FIXTURE = path.resolve(import.meta.dirname, 'fixtures/v2-intake.yaml');

/** The intake as issue 14 quotes it. */
const QUOTED = `project: { name: "Customer Analytics Platform", client: "acme-corp" }
requirements: ["Build demand forecasting model", "Create executive dashboard", "Document API endpoints"]
phases: [planning, architecture, data, development, qa, documentation]
constraints: { timeline: "2 weeks", budget_tokens: 2000000 }
`;

/** Six phases of real `claude` processes on a loaded two-core machine. */
const TIMEOUT = 1_500_000;

describe('the v2 intake, as written', { timeout: TIMEOUT }, () => {
  it('runs with --rehearse to CP1–CP6, each preset artifact written through Claude Code', async () => {
    expect(fs.readFileSync(FIXTURE, 'utf8')).toBe(QUOTED);
    const workspace = path.join(tempDir('orch-v2-intake-'), 'ws');
    const outputsDir = tempDir('orch-v2-outputs-');
    const env = {
      TEMPORAL_NAMESPACE: await freshNamespace('v2intake'),
      ORCHESTRATOR_OUTPUTS_DIR: outputsDir,
      ORCHESTRATOR_HOME: tempDir('orch-v2-home-'),
    };
    const r = await runCli(
      ['run', 'start', '--intake', FIXTURE, '--workspace', workspace, '--rehearse', '--json'],
      env,
      TIMEOUT - 60_000,
    );
    expect(r.code, `${r.stderr}\n${r.stdout.slice(-3000)}`).toBe(0);
    const final = JSON.parse(r.stdout) as RunStatus;
    expect(final.state).toBe('completed');
    expect(final.phases.map((p) => [p.name, p.status])).toEqual(
      ['planning', 'architecture', 'data', 'development', 'qa', 'documentation'].map((n) => [n, 'completed']),
    );
    expect(final.checkpoints.map((c) => c.id)).toEqual(['CP1', 'CP2', 'CP3', 'CP4', 'CP5', 'CP6']);
    expect(final.baseline?.id).toBe('CP0');
    // timeline: "2 weeks" is the run's deadline, two weeks after its start.
    expect(final.deadline).toBeDefined();
    const weeks = (Date.parse(final.deadline!) - Date.now()) / (7 * 86_400_000);
    expect(weeks).toBeGreaterThan(1.9);
    expect(weeks).toBeLessThanOrEqual(2);

    // What each preset phase's artifacts expect is in the workspace, and not empty.
    for (const f of ['plan.md', 'ARCHITECTURE.md', 'data/schema.sql', 'tests/report.md', 'README.md']) {
      expect(fs.statSync(path.join(workspace, f)).size, f).toBeGreaterThan(0);
    }
    expect(fs.readdirSync(path.join(workspace, 'src')).length).toBeGreaterThan(0);
    // Every one of them came from a Write tool call of a claude process (its transcript says so).
    const agentsDir = path.join(outputsDir, final.runId, 'agents');
    const written = new Set<string>();
    for (const file of fs.readdirSync(agentsDir).filter((f) => f.endsWith('.jsonl'))) {
      for (const line of fs.readFileSync(path.join(agentsDir, file), 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        const msg = JSON.parse(line) as {
          type?: string;
          message?: { content?: { type: string; name?: string; input?: { file_path?: string } }[] };
        };
        for (const b of msg.type === 'assistant' ? (msg.message?.content ?? []) : []) {
          if (b.type === 'tool_use' && b.name === 'Write' && b.input?.file_path)
            written.add(path.relative(workspace, b.input.file_path));
        }
      }
    }
    for (const f of ['plan.md', 'ARCHITECTURE.md', 'data/schema.sql', 'tests/report.md', 'README.md'])
      expect(written, f).toContain(f);
    expect([...written].some((f) => f.startsWith('src/'))).toBe(true);
  });
});
