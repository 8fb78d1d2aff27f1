/**
 * Recording histories for the replay archive from the workflow and scenario tests themselves: with
 * ORCH_RECORD_HISTORIES=<dir>, every test env saves the history of each closed execution on its task
 * queue when it closes. scripts/record-histories.ts runs the tests that way and files the distinct
 * histories into test/replay/histories/<date>/. The tests cover every workflow type and patched()
 * path, so the archive follows them without a second copy of every scenario.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

/** Saves each closed execution on `taskQueue` as `<dir>/<taskQueue>/<workflowId>.<runId>.json`. */
export async function saveHistories(client: Client, taskQueue: string, dir: string): Promise<number> {
  const out = path.join(dir, taskQueue);
  fs.mkdirSync(out, { recursive: true });
  let n = 0;
  const query = `TaskQueue = '${taskQueue}' AND ExecutionStatus != 'Running'`;
  for await (const wf of client.workflow.list({ query })) {
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    const file = `${wf.workflowId.replace(/[^\w.-]+/g, '_')}.${wf.runId}.json`;
    fs.writeFileSync(path.join(out, file), historyToJSON(history));
    n++;
  }
  return n;
}
