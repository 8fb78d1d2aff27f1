/**
 * The tools registry in a run: an api agent whose role selects `tools: [read_file, sql]` is offered
 * exactly those (seen at the local model server) and answers a question from a workspace CSV through the
 * sql tool on real DuckDB; the model here reads the tool's result and answers with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelServer } from '../../src/modelserver';
import type { Brain, WireBlock } from '../../src/modelserver/brain';
import { phaseResultsQuery } from '../../src/shared/messages';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { startRun } from '../../src/runs';
import { createModelTestEnv, type ModelTestEnv } from '../harness/model-env';
import { tempDir, type TestEnv } from '../harness/temporal';

const QUERY = "SELECT region, sum(units) AS total FROM 'sales.csv' GROUP BY 1 ORDER BY total DESC LIMIT 1";

/** Asks the sql tool once, then answers with what it returned. */
const analyst: Brain = (req) => {
  const results = req.messages.flatMap((m) =>
    typeof m.content === 'string' ? [] : m.content.filter((b: WireBlock) => b.type === 'tool_result'),
  );
  const last = results.at(-1);
  if (!last)
    return { type: 'message', content: [{ type: 'tool_use', name: 'sql', input: { query: QUERY } }] };
  return {
    type: 'message',
    content: [{ type: 'text', text: `ANSWER from sql: ${JSON.stringify(last.content)}` }],
  };
};

describe('an api agent with tools [read_file, sql]', () => {
  let t: TestEnv;
  let server: ModelServer;
  let env: ModelTestEnv;
  beforeAll(async () => {
    env = await createModelTestEnv({ script: analyst });
    ({ t, server } = env);
  });
  afterAll(async () => env?.close());

  it('answers which region sold most from a CSV through the sql tool (real DuckDB)', async () => {
    const ws = tempDir('orch-ws-');
    fs.writeFileSync(path.join(ws, 'sales.csv'), 'region,units\nnorth,10\nsouth,32\nnorth,5\neast,7\n');
    const since = server.requests.length;
    const input = await startRun(t.client, {
      spec: ProjectSpecSchema.parse({
        project: { name: 'sql-agent' },
        phases: [
          {
            name: 'analysis',
            agents: [
              {
                role: 'analyst',
                backend: 'api',
                tools: ['read_file', 'sql'],
                prompt: 'Which region sold most?',
              },
            ],
          },
        ],
      }),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const handle = t.client.workflow.getHandle(input.runId);
    expect(((await handle.result()) as { state: string }).state).toBe('completed');
    const served = server.requests.slice(since).filter((r) => r.endpoint === 'messages');
    expect(served.length).toBe(2);
    for (const r of served) expect(r.toolNames).toEqual(['read_file', 'sql']);
    const [phase] = await handle.query(phaseResultsQuery);
    const summary = phase!.agents[0]!.summary;
    expect(summary).toMatch(/^ANSWER from sql: /);
    const answer = JSON.parse(JSON.parse(summary.slice('ANSWER from sql: '.length)) as string) as unknown;
    expect(answer).toEqual({
      columns: ['region', 'total'],
      rows: [['south', '32']],
      row_count: 1,
      truncated: false,
    });
  }, 300_000);
});
