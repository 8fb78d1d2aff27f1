/**
 * workers/workflow-thread: the prestarted workflow thread is what the SDK's first spawn of its thread
 * file gets, every other spawn is Node's own, Node's constructor is back afterwards, a thread that is
 * not handed over is terminated, and so is every thread of a create that failed. Each case runs in a fresh Node (the prestart lives on globalThis).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../scripts/build-lib.mjs';

const exec = promisify(execFile);

async function inFreshNode(body: string): Promise<Record<string, unknown>> {
  const script = `
    import wt from 'node:worker_threads';
    import { createRequire } from 'node:module';
    import { handOverPrestartedThread, prestartWorkflowThread } from './workers/workflow-thread.ts';
    const file = createRequire(${JSON.stringify(`${ROOT}/package.json`)}).resolve(
      '@temporalio/worker/lib/workflow/workflow-worker-thread',
    );
    const NodeWorker = wt.Worker;
    // The prestarted thread, where workers/workflow-thread.ts keeps it until it is handed over.
    const prestartedThread = () => globalThis[Symbol.for('orchestrator.prestartedWorkflowThread')]?.thread;
    ${body}`;
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    timeout: 60_000,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('the prestarted workflow thread', () => {
  it("is the SDK's first spawn of its thread file; other spawns are Node's; the constructor is restored", async () => {
    const r = await inFreshNode(`
      prestartWorkflowThread();
      const prestarted = prestartedThread();
      let handedOver = 0;
      const [first, other, second] = await handOverPrestartedThread(async () => {
        const a = new wt.Worker(file);
        const b = new wt.Worker('setTimeout(() => {}, 10)', { eval: true });
        const c = new wt.Worker(file);
        return [a, b, c];
      }, () => handedOver++);
      const out = {
        prestartedOnce: prestarted !== undefined && first === prestarted,
        otherIsNew: other !== prestarted && other instanceof NodeWorker,
        secondIsNew: second !== prestarted,
        handedOver,
        restored: wt.Worker === NodeWorker,
      };
      await Promise.all([first.terminate(), other.terminate(), second.terminate()]);
      console.log(JSON.stringify(out));
    `);
    expect(r).toEqual({
      prestartedOnce: true,
      otherIsNew: true,
      secondIsNew: true,
      handedOver: 1,
      restored: true,
    });
  });

  it("a prestarted thread the SDK never asks for is terminated; without a prestart, spawns are Node's own", async () => {
    const r = await inFreshNode(`
      const spawned = await handOverPrestartedThread(async () => new wt.Worker(file), () => {});
      const own = spawned instanceof NodeWorker;
      await spawned.terminate();
      prestartWorkflowThread();
      const prestarted = prestartedThread();
      const exited = new Promise((resolve) => prestarted.once('exit', () => resolve(true)));
      await handOverPrestartedThread(async () => undefined, () => {});
      console.log(JSON.stringify({ own, exited: await exited, restored: wt.Worker === NodeWorker }));
    `);
    expect(r).toEqual({ own: true, exited: true, restored: true });
  });

  it('a create that fails ends every thread it spawned, so the process can exit', async () => {
    // The SDK spawns its workflow thread, then fails to register the worker (a namespace the server
    // lacks) and leaves the thread running: the process printed its error and never exited.
    const r = await inFreshNode(`
      const exits = [];
      const failing = (spawn) => async () => {
        const t = spawn();
        exits.push(new Promise((resolve) => t.once('exit', () => resolve(true))));
        throw new Error('namespace not found');
      };
      prestartWorkflowThread();
      const errors = [];
      for (const create of [failing(() => new wt.Worker(file)), failing(() => new wt.Worker(file))])
        await handOverPrestartedThread(create, () => {}).catch((e) => errors.push(e.message));
      console.log(JSON.stringify({ errors, exited: await Promise.all(exits), restored: wt.Worker === NodeWorker }));
    `);
    // The first create got the prestarted thread, the second a thread of its own: both ended.
    expect(r).toEqual({
      errors: ['namespace not found', 'namespace not found'],
      exited: [true, true],
      restored: true,
    });
  });
});
