/**
 * `npx tsx bench/activities.ts`: the two activities of a script phase (`scriptTurn`, `checkpointPhase`)
 * called in-process, without Temporal (a mock activity context), N times each, with wall and CPU time
 * per call next to the baseline's `greet`: what the activities themselves cost, apart from round trips.
 * `BENCH_CALLS` (default 20).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { loadConfig } from '../config/env';
import { createActivities } from '../activities';
import { createLogger } from '../src/logger';
import { median } from './harness';

const CALLS = Number(process.env.BENCH_CALLS ?? 20);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-acts-'));
try {
  const config = loadConfig({ ...process.env, ORCHESTRATOR_OUTPUTS_DIR: path.join(dir, 'outputs') });
  const acts = createActivities({ config, logger: createLogger('error') });
  const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR', () => undefined) });
  const ws = path.join(dir, 'ws');
  await env.run(acts.initWorkspace, { workspace: ws });
  const time = async (fn: () => Promise<unknown>) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    const c = process.cpuUsage(c0);
    return { wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
  };
  const rows: Record<string, { wall: number; cpu: number }[]> = {
    greet: [],
    scriptTurn: [],
    checkpointPhase: [],
  };
  for (let i = 0; i < CALLS + 2; i++) {
    const g = await time(() => env.run((n: string) => acts.greet(n), 'bench'));
    const s = await time(() =>
      env.run((a: Parameters<typeof acts.scriptTurn>[0]) => acts.scriptTurn(a), {
        runId: 'bench',
        agentId: `p${i}-noop`,
        workspace: ws,
        outputsDir: config.outputsDir,
        command: ['true'],
      }),
    );
    const c = await time(() =>
      env.run(acts.checkpointPhase, {
        workspace: ws,
        outputsDir: config.outputsDir,
        runId: 'bench',
        phase: `p${i}`,
        checkpoint: `CP${i + 1}`,
        label: `post-p${i}`,
        artifacts: [],
        summary: `phase p${i}\n`,
        audit: [],
      }),
    );
    if (i < 2) continue; // warm-up
    rows.greet!.push(g);
    rows.scriptTurn!.push(s);
    rows.checkpointPhase!.push(c);
  }
  for (const [k, v] of Object.entries(rows)) {
    console.log(
      `${k.padEnd(16)} wall ${median(v.map((x) => x.wall))
        .toFixed(1)
        .padStart(6)} ms  worker CPU ${median(v.map((x) => x.cpu))
        .toFixed(1)
        .padStart(6)} ms  (median of ${v.length})`,
    );
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
