/**
 * Other services use this package as a library (package.json `exports`, dist/lib): a second Node project
 * that depends on this one by path starts a run and rolls it back with only the exported definitions and
 * types, type-checked by `tsc` as that project would (module and resolution `node16`). And the README's
 * `temporal workflow start --input` example starts a run that completes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLibrary, libraryStaleness } from '../../scripts/build-library.mjs';
import { ensureTemporalCli } from '../../src/devserver';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

const ROOT = path.resolve(import.meta.dirname, '../..');

let t: TestEnv;
beforeAll(async () => {
  // `make test` built dist/lib already (the build step); a developer's edited source is rebuilt here.
  if (libraryStaleness() !== undefined) await buildLibrary();
  t = await createTestEnv();
  await t.startWorker();
}, 600_000);
afterAll(async () => t?.close());

/** The other service's code: a client of ours that knows only what the package exports. */
const CONSUMER = `
import { Client, Connection } from '@temporalio/client';
import { startRun } from 'orchestrator';
import {
  checkpointsQuery,
  rollbackUpdate,
  statusQuery,
  ProjectSpecSchema,
  type ProjectWorkflow,
  type RollbackResult,
} from 'orchestrator/definitions';

const [address, taskQueue, workspace, outputsDir, runId] = process.argv.slice(2) as [
  string, string, string, string, string,
];
const connection = await Connection.connect({ address });
const client = new Client({ connection });
const spec = ProjectSpecSchema.parse({
  project: { name: 'library-client' },
  phases: [
    { name: 'one', agents: [{ role: 'dev', backend: 'script', command: ['sh', '-c', 'echo one > one.txt'] }] },
    {
      name: 'two',
      agents: [{ role: 'dev', backend: 'script', command: ['sh', '-c', 'echo two > two.txt; while [ ! -e go ]; do sleep 0.1; done'] }],
    },
  ],
});
await startRun(client, { spec, workspace, outputsDir, taskQueue, runId });
const handle = client.workflow.getHandle<ProjectWorkflow>(runId);
while ((await handle.query(checkpointsQuery)).length < 1) await new Promise((r) => setTimeout(r, 200));
while ((await handle.query(statusQuery)).currentPhase !== 'two') await new Promise((r) => setTimeout(r, 200));
const result: RollbackResult = await handle.executeUpdate(rollbackUpdate, {
  args: [{ checkpoint: 'CP1', reason: 'from another service' }],
});
// The definitions carry their types: a wrong argument does not compile.
// @ts-expect-error a checkpoint id is a string
void (() => handle.executeUpdate(rollbackUpdate, { args: [{ checkpoint: 1 }] }));
process.stdout.write(JSON.stringify(result) + '\\n');
await connection.close();
`;

describe('the package as a library', () => {
  it('a second project depending on it by path starts a run and rolls it back with the exported definitions', async () => {
    const dir = tempDir('orch-consumer-');
    fs.writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        type: 'module',
        private: true,
        dependencies: { orchestrator: `file:${ROOT}`, '@temporalio/client': '*' },
      }),
    );
    // What `npm install <path>` makes of a path dependency: a link to the package folder. Its own
    // dependencies (and the consumer's @temporalio/client and typings) come from the same tree.
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'orchestrator'));
    for (const dep of ['@temporalio', '@types'])
      fs.symlinkSync(path.join(ROOT, 'node_modules', dep), path.join(dir, 'node_modules', dep));
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          strict: true,
          skipLibCheck: true,
          types: ['node'],
          outDir: 'out',
        },
        files: ['consumer.mts'],
      }),
    );
    fs.writeFileSync(path.join(dir, 'consumer.mts'), CONSUMER);

    const tsc = await execa(
      process.execPath,
      [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir],
      {
        reject: false,
        cwd: dir,
      },
    );
    expect(tsc.exitCode, tsc.stdout + tsc.stderr).toBe(0);

    const workspace = path.join(dir, 'ws');
    const runId = `lib-${Math.random().toString(36).slice(2, 8)}`;
    const run = await execa(
      process.execPath,
      [
        path.join(dir, 'out', 'consumer.mjs'),
        t.config.temporal.address,
        t.taskQueue,
        workspace,
        t.config.outputsDir,
        runId,
      ],
      { reject: false, cwd: dir, timeout: 240_000 },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim()) as { checkpoint?: string; resumesAt?: string };
    expect(result).toEqual({ checkpoint: 'CP1', resumesAt: 'two' });

    // The rollback took: phase two starts again from CP1's workspace and completes once let go.
    fs.writeFileSync(path.join(workspace, 'go'), '');
    const summary = await t.client.workflow.getHandle(runId).result();
    expect(summary).toMatchObject({ state: 'completed' });
    expect(fs.readFileSync(path.join(workspace, 'one.txt'), 'utf8')).toBe('one\n');
  }, 420_000);

  it("the README's `temporal workflow start --input` example starts a run that completes", async () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const block = /```sh\n(mkdir[^\n]*\ntemporal workflow start --type projectWorkflow[\s\S]*?)```/.exec(
      readme,
    )?.[1];
    expect(block, 'README has the example').toBeDefined();
    const ws = tempDir('orch-raw-ws-');
    const runId = `raw-${Math.random().toString(36).slice(2, 8)}`;
    // The example as written, with this test's server, queue, folders and id put in its placeholders.
    const script = block!
      .replaceAll('/tmp/hello-ws', ws)
      .replaceAll('/tmp/hello-outputs', t.config.outputsDir)
      .replaceAll('hello-1', runId)
      .replace('--task-queue orchestrator', `--task-queue ${t.taskQueue}`);
    const temporal = await ensureTemporalCli();
    const started = await execa('bash', ['-euc', script], {
      reject: false,
      env: {
        PATH: `${path.dirname(temporal)}:${process.env.PATH}`,
        TEMPORAL_ADDRESS: t.config.temporal.address,
      },
    });
    expect(started.exitCode, started.stderr).toBe(0);
    const summary = await t.client.workflow.getHandle(runId).result();
    expect(summary).toMatchObject({ state: 'completed' });
    expect(fs.readFileSync(path.join(ws, 'hello.txt'), 'utf8')).toBe('hello\n');
  });
});
