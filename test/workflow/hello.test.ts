import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from '../harness/temporal';
import { quietBundlerLogger } from '../../workers/bundle';

describe('foundation: a worker on the real dev server', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    // helloWorkflow is test-only: it gets its own small bundle instead of the production one.
    const { code } = await bundleWorkflowCode({
      workflowsPath: path.resolve(import.meta.dirname, '../harness/hello-workflow.ts'),
      logger: quietBundlerLogger(),
    });
    await t.startWorker({ workflowBundle: { code } });
  });
  afterAll(async () => t.close());

  it('runs a workflow with an activity round trip', async () => {
    const result = await t.client.workflow.execute('helloWorkflow', {
      taskQueue: t.taskQueue,
      workflowId: `hello-${Date.now()}`,
      args: ['Temporal'],
    });
    expect(result).toBe('Hello, Temporal!');
  });
});
