/**
 * A worker process for test/workflow/legacy-query-replay.test.ts, which SIGKILLs it: runs the bundle at
 * LQ_BUNDLE on LQ_TASK_QUEUE against TEMPORAL_ADDRESS, with a sticky queue that holds a workflow task
 * for LQ_STICKY_MS after the process dies. Prints `ready` once it polls.
 */
import { NativeConnection, Worker } from '@temporalio/worker';

const need = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const connection = await NativeConnection.connect({ address: need('TEMPORAL_ADDRESS') });
const worker = await Worker.create({
  connection,
  taskQueue: need('LQ_TASK_QUEUE'),
  workflowBundle: { codePath: need('LQ_BUNDLE') },
  activities: { tick: () => Promise.resolve() },
  stickyQueueScheduleToStartTimeout: Number(need('LQ_STICKY_MS')),
});
const running = worker.run();
process.stdout.write('ready\n');
await running;
