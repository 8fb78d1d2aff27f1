/**
 * A namespace of a test file's own on the shared dev server: commands that default to "the latest run"
 * see only this file's runs, whatever other test files start meanwhile.
 */
import { randomBytes } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { CLIENT_CHANNEL_ARGS } from '../../src/client-channel';
import { env } from './temporal';

/**
 * Registers a fresh namespace and waits until the frontend serves it. Set `TEMPORAL_NAMESPACE` to the
 * returned name before {@link createTestEnv}; the worker registers the search attributes there.
 */
export async function freshNamespace(prefix = 'test'): Promise<string> {
  const namespace = `${prefix}-${randomBytes(4).toString('hex')}`;
  const connection = await Connection.connect({
    address: env('TEMPORAL_ADDRESS'),
    channelArgs: CLIENT_CHANNEL_ARGS,
  });
  try {
    await connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs('1 day'),
    });
    // The frontend's namespace cache learns of it after a refresh: list until it answers.
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
        return namespace;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    await connection.close();
  }
}
