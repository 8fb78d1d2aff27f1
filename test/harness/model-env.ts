/**
 * A test env whose worker sends model calls to a local model server (the only stand-in: the model), the
 * setup most agent tests share.
 */
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { createTestEnv, tempDir, type TestEnv } from './temporal';

export interface ModelTestEnv {
  t: TestEnv;
  server: ModelServer;
  close(): Promise<void>;
}

/** A model server, a test env, and a worker pointed at that server with a fresh agent home. */
export async function createModelTestEnv(
  serverOptions?: Parameters<typeof startModelServer>[0],
): Promise<ModelTestEnv> {
  const server = await startModelServer(serverOptions);
  const t = await createTestEnv();
  await t.startWorker({
    deps: {
      config: {
        ...t.config,
        anthropic: { baseURL: server.url, apiKey: 'test-key' },
        agentHome: tempDir('orch-home-'),
      },
    },
  });
  return {
    t,
    server,
    async close() {
      await t.close();
      await server.close();
    },
  };
}
