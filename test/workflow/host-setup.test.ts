/**
 * A run whose host is lost before its first checkpoint (README "Many hosts"): nothing of the run is on
 * that host but its empty setup, so the run claims another host and sets up there, as if it had been
 * placed there first, instead of failing. The lost host is simulated: a worker whose claimHost names a
 * host id no worker polls (its activities' config differs from its own), then stops; a normal worker
 * takes over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema } from '../../src/shared/spec';
import type { ProjectSummary } from '../../workflows/project';
import { waitFor } from '../harness/gates';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

describe('a host lost before the first checkpoint', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
  });
  afterAll(async () => {
    await t.close();
  });

  it('sets the run up on another host and completes', async () => {
    const ghost = { ...t.config, host: { ...t.config.host, id: 'ghost', moveAfterMs: 3_000 } };
    const g = await t.startWorker({ deps: { config: ghost } });
    const workspace = tempDir('orch-host-setup-ws-');
    fs.writeFileSync(path.join(workspace, 'in.txt'), 'input\n');
    const input = await startRun(t.client, {
      spec: ProjectSpecSchema.parse({
        project: { name: 'setup moves' },
        phases: [
          {
            name: 'development',
            agents: [{ role: 'developer', backend: 'script', command: ['sh', '-c', 'cp in.txt out.txt'] }],
            artifacts: [{ pattern: 'out.txt' }],
          },
        ],
      }),
      workspace,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    // Placed on the ghost host, whose queue no worker polls: its setup waits there.
    await waitFor(
      async () => (await handle.query<{ host?: string }>('status')).host === 'ghost' || undefined,
      'placed on the ghost host',
      120_000,
    );
    g.worker.shutdown();
    await g.running;
    await t.startWorker();

    const summary = (await handle.result()) as ProjectSummary;
    expect(summary.state).toBe('completed');
    const live = t.config.host.id;
    expect((await handle.query<{ host?: string }>('status')).host).toBe(live);
    expect(fs.readFileSync(path.join(workspace, 'out.txt'), 'utf8')).toBe('input\n');
    const audit = fs
      .readFileSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; details: Record<string, unknown> });
    const hostEvents = audit.filter((e) => e.kind === 'host').map((e) => e.details);
    expect(hostEvents.map((d) => [d.event, d.host ?? d.from, d.to, d.during])).toEqual([
      ['placed', 'ghost', undefined, undefined],
      ['moved', 'ghost', live, 'setup'],
    ]);
    // CP0 was taken once, on the live host.
    expect(audit.filter((e) => e.kind === 'checkpoint' && e.details.id === 'CP0')).toHaveLength(1);
  }, 300_000);
});
