/**
 * `npx tsx bench/leftover.ts`: what a finished orchestrator run leaves running on the worker. Runs an
 * orchestrator run and samples for SAMPLE_MS after its result (the worker's CPU, its descendant processes,
 * the dev server's CPU), then the same after a baseline run, then a baseline right after a run (no pause).
 * Found (2026-12-01): nothing; the worker and the server are as idle after a run as after a baseline, and
 * no process of the run is left (see the README's performance section).
 */
import fs from 'node:fs';
import { ProjectSpecSchema } from '../src/shared/spec';
import { startRun } from '../src/runs';
import { benchEnv } from './harness';

const PHASES = Number(process.env.BENCH_PHASES ?? 10);
const SAMPLE_MS = Number(process.env.SAMPLE_MS ?? 5000);
const TICK = 100;
const HZ = 100;

function cpuOf(pid: number | string, task?: string): number {
  try {
    const f = task ? `/proc/${pid}/task/${task}/stat` : `/proc/${pid}/stat`;
    const s = fs.readFileSync(f, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / HZ;
  } catch {
    return 0;
  }
}
function threads(pid: number): Map<string, { name: string; ms: number }> {
  const m = new Map<string, { name: string; ms: number }>();
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    let name = '?';
    try {
      name = fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
    } catch {
      // gone
    }
    m.set(t, { name, ms: cpuOf(pid, t) });
  }
  return m;
}
function descendants(root: number): { pid: number; cmd: string }[] {
  const kids = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)!).push(Number(d));
    } catch {
      // gone
    }
  }
  const out: { pid: number; cmd: string }[] = [];
  const walk = (p: number) => {
    for (const c of kids.get(p) ?? []) {
      let cmd = '';
      try {
        cmd = fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 120);
      } catch {
        // gone
      }
      out.push({ pid: c, cmd });
      walk(c);
    }
  };
  walk(root);
  return out;
}

async function sample(label: string): Promise<void> {
  let prevT = threads(process.pid);
  let prevS = cpuOf(env.serverPid);
  let prevSelf = cpuOf(process.pid);
  const row: string[] = [];
  for (let t = 0; t < SAMPLE_MS; t += TICK) {
    await new Promise((r) => setTimeout(r, TICK));
    const now = threads(process.pid);
    const s = cpuOf(env.serverPid);
    const self = cpuOf(process.pid);
    const busy: string[] = [];
    for (const [tid, v] of now) {
      const d = v.ms - (prevT.get(tid)?.ms ?? 0);
      if (d > 0) busy.push(`${v.name}:${d}`);
    }
    if ((t / TICK) % 5 === 4) {
      const kids = descendants(process.pid).filter(
        (k) => k.pid !== env.serverPid && !/esbuild|spawner/.test(k.cmd),
      );
      if (kids.length) console.log(`  kids at +${t + TICK}: ${kids.map((k) => k.cmd).join(' | ')}`);
    }
    row.push(`+${t + TICK}: w${self - prevSelf} s${s - prevS}`);
    prevT = now;
    prevS = s;
    prevSelf = self;
  }
  console.log(`${label} (ms CPU per ${TICK} ms: w worker, s server):\n  ${row.join(' ')}`);
}

const env = await benchEnv();
try {
  const spec = ProjectSpecSchema.parse({
    project: { name: 'bench' },
    phases: Array.from({ length: PHASES }, (_, i) => ({
      name: `p${i + 1}`,
      agents: [{ role: 'noop', backend: 'script', command: ['true'] }],
    })),
  });
  const base = async (id: string) => {
    const t0 = performance.now();
    await env.client.workflow.execute('baselineWorkflow', {
      taskQueue: 'bench',
      workflowId: id,
      args: [PHASES * 2],
    });
    return (performance.now() - t0) / PHASES;
  };
  await base('warm');
  const run = async (i: number) => {
    const t0 = performance.now();
    const input = await startRun(env.client, {
      spec,
      workspace: `${env.dir}/ws-${i}`,
      outputsDir: env.config.outputsDir,
      taskQueue: 'bench',
      runId: `probe-${i}`,
    });
    await env.client.workflow.getHandle(input.runId).result();
    return (performance.now() - t0) / PHASES;
  };
  console.log(`warm product ${(await run(0)).toFixed(1)} ms/phase`);
  await new Promise((r) => setTimeout(r, 3000));
  console.log(`baseline after quiet: ${(await base('b-quiet')).toFixed(1)} ms/phase`);
  await new Promise((r) => setTimeout(r, 3000));
  console.log(`product: ${(await run(1)).toFixed(1)} ms/phase`);
  await sample('after product');
  await new Promise((r) => setTimeout(r, 3000));
  console.log(`baseline: ${(await base('b-ctl')).toFixed(1)} ms/phase`);
  await sample('after baseline');
  console.log(`baseline right after sampling: ${(await base('b-after')).toFixed(1)} ms/phase`);
  console.log(`product: ${(await run(2)).toFixed(1)} ms/phase`);
  console.log(`baseline immediately after: ${(await base('b-imm')).toFixed(1)} ms/phase`);
  console.log(`load: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  await env.close();
}
