/**
 * `npm run bench:long [-- --phases N]`: a 1,000-phase run of no-op script agents (`--phases` or
 * BENCH_PHASES to change it) on a private dev server. Prints the largest workflow input of the run's executions (the first input and every
 * continue-as-new carry), how it changes from execution to execution, and the event counts. The carry is
 * bounded when the input stays far below Temporal's 2 MB payload limit (target: under 256 KB).
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { ProjectSpecSchema } from '../src/shared/spec';
import { startRun } from '../src/runs';
import { benchEnv } from './harness';

/** `--phases N` (or `--phases=N`), else BENCH_PHASES, else 1,000. */
function phasesArg(argv: readonly string[]): number {
  const i = argv.findIndex((a) => a === '--phases' || a.startsWith('--phases='));
  const raw = i < 0 ? process.env.BENCH_PHASES : (argv[i]!.split('=')[1] ?? argv[i + 1]);
  const n = Number(raw ?? 1000);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--phases must be a positive integer, got "${raw}"`);
  return n;
}

const PHASES = phasesArg(process.argv.slice(2));
const LIMIT = 256 * 1024;

const env = await benchEnv();
try {
  const spec = ProjectSpecSchema.parse({
    project: { name: 'long run' },
    phases: Array.from({ length: PHASES }, (_, i) => ({
      name: `p${String(i + 1).padStart(4, '0')}`,
      agents: [{ role: 'noop', backend: 'script', command: ['true'] }],
    })),
  });
  const t0 = performance.now();
  const input = await startRun(env.client, {
    spec,
    workspace: `${env.dir}/ws`,
    outputsDir: env.config.outputsDir,
    taskQueue: 'bench',
    runId: 'long',
  });
  const result = (await env.client.workflow.getHandle(input.runId).result()) as { state: string };
  const seconds = (performance.now() - t0) / 1000;

  // Every execution of the run, oldest first: its start event holds its input (spec + carry).
  const executions: {
    runId: string;
    inputBytes: number;
    carryBytes: number;
    /** Phases done when the execution started (its carry's nextPhase). */
    donePhases: number;
    events: number;
    /** JSON size of each part of the input: the spec and each field of the carry. */
    parts: Record<string, number>;
  }[] = [];
  for await (const wf of env.client.workflow.list({ query: `WorkflowId = '${input.runId}'` })) {
    const history = await env.client.workflow.getHandle(input.runId, wf.runId).fetchHistory();
    const events = history.events ?? [];
    const payloads = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    const sizes = payloads.map((p) => p.data?.length ?? 0);
    const first = payloads[0] ? defaultPayloadConverter.fromPayload<{ spec?: unknown }>(payloads[0]) : {};
    const carry = payloads[1] ? defaultPayloadConverter.fromPayload(payloads[1]) : undefined;
    const parts: Record<string, number> = { spec: Buffer.byteLength(JSON.stringify(first.spec ?? null)) };
    for (const [k, v] of Object.entries((carry ?? {}) as Record<string, unknown>))
      parts[`carry.${k}`] = Buffer.byteLength(JSON.stringify(v) ?? '');
    executions.push({
      parts,
      runId: wf.runId,
      inputBytes: sizes.reduce((a, b) => a + b, 0),
      carryBytes: carry === undefined ? 0 : Buffer.byteLength(JSON.stringify(carry)),
      donePhases: (carry as { nextPhase?: number } | undefined)?.nextPhase ?? 0,
      events: events.length,
    });
  }
  executions.sort((a, b) => a.carryBytes - b.carryBytes);
  const largest = Math.max(...executions.map((e) => e.inputBytes));
  const events = executions.reduce((n, e) => n + e.events, 0);
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  const carried = executions.filter((e) => e.carryBytes > 0);
  const carries = carried.map((e) => e.carryBytes);
  const phasesBetween = (carried.at(-1)?.donePhases ?? 0) - (carried[0]?.donePhases ?? 0);
  console.log(`phases: ${PHASES}, state: ${result.state}, ${seconds.toFixed(0)} s`);
  console.log(`executions: ${executions.length} (continue-as-new ${executions.length - 1} times)`);
  console.log(`largest workflow input: ${kb(largest)} (${((largest / LIMIT) * 100).toFixed(0)}% of 256 KB)`);
  if (carries.length > 0) {
    console.log(
      `carry: first ${kb(carries[0]!)}, last ${kb(carries[carries.length - 1]!)}, ` +
        `${((carries[carries.length - 1]! - carries[0]!) / Math.max(1, phasesBetween)) | 0} bytes per phase`,
    );
  }
  const biggest = executions.reduce((a, b) => (b.inputBytes > a.inputBytes ? b : a));
  console.log(
    `largest input by part: ${Object.entries(biggest.parts)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([k, n]) => `${k} ${kb(n)}`)
      .join(', ')}`,
  );
  console.log(`events: ${events} in all, largest execution ${Math.max(...executions.map((e) => e.events))}`);
  if (largest >= LIMIT || result.state !== 'completed') process.exitCode = 1;
} finally {
  await env.close();
}
