/**
 * `npx tsx bench/counts.ts`: one orchestrator run of BENCH_PHASES script phases between two marks on
 * stdout (epoch ms), then AFTER_MS of nothing, for a process tracer to count what each window spawned:
 * `strace -f --seccomp-bpf -e trace=execve -ttt -o trace.txt npx tsx bench/counts.ts`.
 */
import { ProjectSpecSchema } from '../src/shared/spec';
import { startRun } from '../src/runs';
import { benchEnv } from './harness';

const PHASES = Number(process.env.BENCH_PHASES ?? 10);
const AFTER_MS = Number(process.env.AFTER_MS ?? 5000);
const env = await benchEnv();
try {
  const spec = ProjectSpecSchema.parse({
    project: { name: 'bench' },
    phases: Array.from({ length: PHASES }, (_, i) => ({
      name: `p${i + 1}`,
      agents: [{ role: 'noop', backend: 'script', command: ['true'] }],
    })),
  });
  const run = async (id: string) => {
    const input = await startRun(env.client, {
      spec,
      workspace: `${env.dir}/ws-${id}`,
      outputsDir: env.config.outputsDir,
      taskQueue: 'bench',
      runId: id,
    });
    await env.client.workflow.getHandle(input.runId).result();
  };
  await run('warm');
  await new Promise((r) => setTimeout(r, AFTER_MS));
  console.log(`MARK start ${Date.now() / 1000} ${process.hrtime.bigint() / 1000n}`);
  const c0 = process.cpuUsage();
  await run('counted');
  const c1 = process.cpuUsage(c0);
  console.log(`MARK result ${Date.now() / 1000} ${process.hrtime.bigint() / 1000n}`);
  console.log(
    `worker+client CPU during the run: ${((c1.user + c1.system) / 1000 / PHASES).toFixed(1)} ms per phase`,
  );
  await new Promise((r) => setTimeout(r, AFTER_MS));
  console.log(`MARK end ${Date.now() / 1000} ${process.hrtime.bigint() / 1000n}`);
  // The raw Temporal baseline with as many activity calls, for comparison.
  console.log(`MARK bstart ${Date.now() / 1000} ${process.hrtime.bigint() / 1000n}`);
  const b0 = process.cpuUsage();
  await env.client.workflow.execute('baselineWorkflow', {
    taskQueue: 'bench',
    workflowId: 'baseline-counted',
    args: [PHASES * 2],
  });
  const b1 = process.cpuUsage(b0);
  console.log(`MARK bresult ${Date.now() / 1000} ${process.hrtime.bigint() / 1000n}`);
  console.log(
    `worker+client CPU during the baseline: ${((b1.user + b1.system) / 1000 / PHASES).toFixed(1)} ms per phase`,
  );
  await new Promise((r) => setTimeout(r, AFTER_MS));
  console.log(`MARK bend ${Date.now() / 1000} ${process.hrtime.bigint() / 1000n}`);
} finally {
  await env.close();
}
