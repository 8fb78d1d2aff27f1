import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowType } from '../../src/shared/names';
import { createTestEnv, type TestEnv } from '../harness/temporal';

describe('foundation: a worker on the real dev server', () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await createTestEnv();
    await t.startWorker();
  });
  afterAll(async () => t.close());

  it('runs a workflow with an activity round trip', async () => {
    const result = await t.client.workflow.execute(WorkflowType.hello, {
      taskQueue: t.taskQueue,
      workflowId: `hello-${Date.now()}`,
      args: ['Temporal'],
    });
    expect(result).toBe('Hello, Temporal!');
  });
});
