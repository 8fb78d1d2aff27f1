/**
 * `npm run bench:phase`: orchestration overhead per phase (script agents that do nothing, so what is
 * measured is the engine: the agent's activity, artifact validation, shadow-git checkpoint, manifest)
 * against a raw Temporal baseline workflow that makes the same number of activity calls per phase, on
 * the same dev server in the same run. Prints both medians and their ratio, and where a phase's time goes
 * (./breakdown: from the histories' event timestamps, per step, per phase, median over the rounds).
 */
import type { Client } from '@temporalio/client';
import { ProjectSpecSchema } from '../src/shared/spec';
import { startRun } from '../src/runs';
import { addInto, attribute, type Counts, type Span, spansOf } from './breakdown';
import { benchEnv, median } from './harness';

const PHASES = Number(process.env.BENCH_PHASES ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Activities per phase in the product: the agent's scriptTurn and checkpointPhase. */
const ACTIVITIES_PER_PHASE = 2;
/**
 * A pause before each measured workflow, on both sides. Work a run leaves behind on the worker after its
 * result (its programs ending, files flushed) otherwise lands in the next measurement: interleaved with
 * no pause, the baseline right after an orchestrator run measured 207 ms per phase instead of 109 ms.
 */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 2000);
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, SETTLE_MS));

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
  const productSteps: Record<string, number>[] = [];
  const baselineSteps: Record<string, number>[] = [];
  const productCounts: Counts[] = [];
  const baselineCounts: Counts[] = [];
  // Warm-up (bundle caches, SQLite, the first workflow task) is not measured.
  await env.client.workflow.execute('baselineWorkflow', {
    taskQueue: 'bench',
    workflowId: 'warm-b',
    args: [2],
  });
  for (let round = 0; round < ROUNDS; round++) {
    // Interleave the two so machine noise hits both alike.
    await settle();
    let t0 = performance.now();
    await env.client.workflow.execute('baselineWorkflow', {
      taskQueue: 'bench',
      workflowId: `baseline-${round}`,
      args: [PHASES * ACTIVITIES_PER_PHASE],
    });
    const baselineWall = performance.now() - t0;
    baseline.push(baselineWall / PHASES);

    await settle();
    t0 = performance.now();
    const input = await startRun(env.client, {
      spec,
      workspace: `${env.dir}/ws-${round}`,
      outputsDir: env.config.outputsDir,
      taskQueue: 'bench',
      runId: `bench-${round}`,
    });
    await env.client.workflow.getHandle(input.runId).result();
    const productWall = performance.now() - t0;
    product.push(productWall / PHASES);

    // Histories are read after the timing, so reading them costs the measured runs nothing.
    const b = await breakdown(env.client, `baseline-${round}`, baselineWall);
    baselineSteps.push(b.steps);
    baselineCounts.push(b.counts);
    const p = await breakdown(env.client, input.runId, productWall);
    productSteps.push(p.steps);
    productCounts.push(p.counts);
  }
  const p = median(product);
  const b = median(baseline);
  console.log(`phases per run: ${PHASES}, rounds: ${ROUNDS}`);
  console.log(`orchestrator per phase (median): ${p.toFixed(1)} ms`);
  console.log(
    `raw Temporal baseline, ${ACTIVITIES_PER_PHASE} activities per phase (median): ${b.toFixed(1)} ms`,
  );
  printSteps('orchestrator', productSteps, productCounts);
  printSteps('raw Temporal baseline', baselineSteps, baselineCounts);
  console.log(
    `ratio orchestrator/baseline: ${(p / b).toFixed(2)}x (overhead ${(p - b).toFixed(1)} ms per phase)`,
  );
} finally {
  await env.close();
}

/**
 * One run's wall time by step, summed over the workflow and its children (./breakdown), plus what the
 * client spent outside the workflow (starting it, preparing the workspace, getting the result).
 */
async function breakdown(
  client: Client,
  workflowId: string,
  wallMs: number,
): Promise<{ steps: Record<string, number>; counts: Counts }> {
  const spans: Span[] = [];
  const counts: Counts = {};
  let first = Infinity;
  let last = -Infinity;
  let events = 0;
  // The latest execution first, then the ones it continued as new from, and every child of each.
  const queue: { workflowId: string; runId?: string; prefix: string; rank?: (p: number) => number }[] = [
    { workflowId, prefix: '' },
  ];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const history = await client.workflow.getHandle(next.workflowId, next.runId).fetchHistory();
    const evs = history.events ?? [];
    events += evs.length;
    const h = spansOf(evs, next.prefix, next.rank);
    spans.push(...h.spans);
    addInto(counts, h.counts);
    if (next.prefix === '') {
      first = Math.min(first, h.first);
      last = Math.max(last, h.last);
    }
    if (next.prefix === '' && h.continuedFrom) queue.push({ workflowId, runId: h.continuedFrom, prefix: '' });
    for (const c of h.children) queue.push({ ...c, prefix: 'agent › ', rank: (p) => 11 + p / 10 });
  }
  counts['history events (run and children)'] = events;
  const steps = attribute(spans, first, last);
  steps['client: start the run, prepare the workspace, fetch the result'] = Math.max(
    0,
    wallMs - (last - first),
  );
  return { steps, counts };
}

/** The median per phase of each step over the rounds, biggest first, with its share of the total. */
function printSteps(title: string, rounds: Record<string, number>[], counts: Counts[]): void {
  const cats = [...new Set(rounds.flatMap((r) => Object.keys(r)))];
  const rows = cats
    .map((c) => ({ c, ms: median(rounds.map((r) => (r[c] ?? 0) / PHASES)) }))
    .sort((x, y) => y.ms - x.ms);
  const total = rows.reduce((n, r) => n + r.ms, 0);
  console.log(
    `\n${title}: where a phase's time goes (median per phase; parts sum to ${total.toFixed(1)} ms)`,
  );
  for (const r of rows) {
    if (r.ms < 0.05) continue;
    console.log(
      `  ${r.ms.toFixed(1).padStart(7)} ms ${((100 * r.ms) / total).toFixed(0).padStart(3)}%  ${r.c}`,
    );
  }
  const keys = [...new Set(counts.flatMap((r) => Object.keys(r)))].sort();
  const per = keys.map((k) => `${k} ${(median(counts.map((r) => r[k] ?? 0)) / PHASES).toFixed(1)}`);
  console.log(`  per phase: ${per.join(', ')}`);
}
