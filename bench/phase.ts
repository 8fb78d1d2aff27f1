/**
 * `npm run bench:phase`: orchestration overhead per phase (script agents that do nothing, so what is
 * measured is the engine: child agent workflow, artifact validation, shadow-git checkpoint, manifest)
 * against a raw Temporal baseline workflow that makes the same number of activity calls per phase, on
 * the same dev server in the same run. Prints both medians and their ratio.
 */
import { ProjectSpecSchema } from '../src/shared/spec';
import { startRun } from '../src/runs';
import { benchEnv, median } from './harness';

const PHASES = Number(process.env.BENCH_PHASES ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Activities per phase in the product: the agent's scriptTurn and checkpointPhase. */
const ACTIVITIES_PER_PHASE = 2;

const env = await benchEnv();
try {
  const spec = ProjectSpecSchema.parse({
    project: { name: 'bench' },
    phases: Array.from({ length: PHASES }, (_, i) => ({
      name: `p${i + 1}`,
      agents: [{ role: 'noop', backend: 'script', command: ['true'] }],
    })),
  });
  const product: number[] = [];
  const baseline: number[] = [];
  // Warm-up (bundle caches, SQLite, the first workflow task) is not measured.
  await env.client.workflow.execute('baselineWorkflow', {
    taskQueue: 'bench',
    workflowId: 'warm-b',
    args: [2],
  });
  for (let round = 0; round < ROUNDS; round++) {
    // Interleave the two so machine noise hits both alike.
    let t0 = performance.now();
    await env.client.workflow.execute('baselineWorkflow', {
      taskQueue: 'bench',
      workflowId: `baseline-${round}`,
      args: [PHASES * ACTIVITIES_PER_PHASE],
    });
    baseline.push((performance.now() - t0) / PHASES);

    t0 = performance.now();
    const input = await startRun(env.client, {
      spec,
      workspace: `${env.dir}/ws-${round}`,
      outputsDir: env.config.outputsDir,
      taskQueue: 'bench',
      runId: `bench-${round}`,
    });
    await env.client.workflow.getHandle(input.runId).result();
    product.push((performance.now() - t0) / PHASES);
  }
  const p = median(product);
  const b = median(baseline);
  console.log(`phases per run: ${PHASES}, rounds: ${ROUNDS}`);
  console.log(`orchestrator per phase (median): ${p.toFixed(1)} ms`);
  console.log(
    `raw Temporal baseline, ${ACTIVITIES_PER_PHASE} activities per phase (median): ${b.toFixed(1)} ms`,
  );
  console.log(
    `ratio orchestrator/baseline: ${(p / b).toFixed(2)}x (overhead ${(p - b).toFixed(1)} ms per phase)`,
  );
} finally {
  await env.close();
}
