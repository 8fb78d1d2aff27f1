/**
 * Agents need no cluster credentials (issue #15, Deliver 2): a worker that holds a Temporal API key and a
 * TLS client key (in its environment and its config) starts team agents whose environment holds neither,
 * nor any Temporal address, and whose sandbox cannot read the key file; the agent's own
 * `orchestrator team request` still works, through its turn's endpoint (ORCHESTRATOR_TEAM_SOCKET), which
 * forwards with the worker's connection. Spoofing through it stays refused by the team.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { TemporalTls } from '../../config/temporal';
import type { TeamStatus } from '../../src/shared/team';
import { startTeam } from '../../src/teams';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';
import { makeTestPki, type TestPki } from '../harness/tls';

const API_KEY = 'tmprl-worker-only-key-93ab71';
let t: TestEnv;
let pki: TestPki;
const saved = { key: process.env.TEMPORAL_API_KEY, path: process.env.TEMPORAL_TLS_CLIENT_KEY_PATH };

beforeAll(async () => {
  pki = makeTestPki();
  t = await createTestEnv();
  // The worker's own environment has the credentials, as a worker on a secured cluster would.
  process.env.TEMPORAL_API_KEY = API_KEY;
  process.env.TEMPORAL_TLS_CLIENT_KEY_PATH = pki.clientKey;
  // And its config: the connection itself is the harness's plain one (the dev server has no TLS).
  await t.startWorker({
    config: {
      ...t.config,
      temporal: {
        ...t.config.temporal,
        apiKey: API_KEY,
        tls: new TemporalTls(undefined, undefined, {
          crt: fs.readFileSync(pki.clientCert),
          key: fs.readFileSync(pki.clientKey),
        }),
      },
    },
  });
}, 120_000);
afterAll(async () => {
  await t?.close();
  if (saved.key === undefined) delete process.env.TEMPORAL_API_KEY;
  else process.env.TEMPORAL_API_KEY = saved.key;
  if (saved.path === undefined) delete process.env.TEMPORAL_TLS_CLIENT_KEY_PATH;
  else process.env.TEMPORAL_TLS_CLIENT_KEY_PATH = saved.path;
});

describe('a team agent of a worker with cluster credentials', () => {
  it('has no API key, TLS key or Temporal address, cannot read the key file, and requests a teammate through its turn', async () => {
    const ws = tempDir('orch-nocreds-');
    fs.writeFileSync(path.join(ws, 'eng.sh'), 'echo built > built.txt\n');
    const req = 'orchestrator team request --role software-engineer --instructions-file eng.sh';
    const manager = [
      'env > manager.env',
      `cat ${pki.clientKey} > keyfile.out 2>&1; echo "exit=$?" >> keyfile.out`,
      `${req} --name dev > req.out 2>&1; echo "exit=$?" >> req.out`,
      // Naming another requester through the endpoint: the team still judges the proof.
      `ORCHESTRATOR_AGENT_ID=architect-1 ${req} --name spoof > spoof.out 2>&1; echo "exit=$?" >> spoof.out`,
      // Another team run than its own: refused by the endpoint.
      `ORCHESTRATOR_RUN_ID=other-run ${req} --name elsewhere > other.out 2>&1; echo "exit=$?" >> other.out`,
      'orchestrator team status --json > status.out 2>&1; echo "exit=$?" >> status.out',
    ].join('\n');
    const { runId } = await startTeam(t.client, {
      goal: 'No credentials in agents',
      workspace: ws,
      outputsDir: t.config.outputsDir,
      policy: loadHierarchyPolicy(undefined, { agent: { completionGraceS: 2 } }),
      backend: 'script',
      taskQueue: t.taskQueue,
      instructions: { manager },
    });
    const final = (await t.client.workflow.getHandle(runId).result()) as TeamStatus;
    expect(final.state).toBe('completed');
    const out = (f: string) => fs.readFileSync(path.join(ws, f), 'utf8');

    const env = out('manager.env');
    expect(env).toMatch(/^ORCHESTRATOR_TEAM_SOCKET=\//m);
    expect(env).toMatch(/^ORCHESTRATOR_AGENT_KEY=/m);
    expect(env).not.toMatch(/^TEMPORAL_/m);
    expect(env).not.toContain(API_KEY);
    expect(env).not.toContain('PRIVATE KEY');
    const keyBody = fs.readFileSync(pki.clientKey, 'utf8').split('\n')[1]!;
    expect(env).not.toContain(keyBody);
    // The worker's key file is outside everything the sandbox shows.
    expect(out('keyfile.out')).not.toContain(keyBody);
    expect(out('keyfile.out')).toMatch(/No such file or directory[\s\S]*exit=1/);

    expect(out('req.out')).toMatch(
      /software-engineer "dev" (started|was accepted and starts in a moment): agent software-engineer-1 \(.*\)[\s\S]*exit=0/,
    );
    expect(out('spoof.out')).toMatch(
      /spoof attempt: the request does not prove it comes from architect-1[\s\S]*exit=1/,
    );
    expect(out('other.out')).toMatch(
      /an agent acts in its own team run only \(.*\), not "other-run"[\s\S]*exit=1/,
    );
    expect(out('status.out')).toContain(`"runId": "${runId}"`);
    expect(out('status.out')).toContain('exit=0');
    const rows = final.agents.map((a) => `${a.id}:${a.name}:${a.requestedBy}:${a.state}`);
    expect(rows).toContain('software-engineer-1:dev:manager-1:completed');
    expect(fs.readFileSync(path.join(ws, 'built.txt'), 'utf8')).toBe('built\n');
  }, 600_000);
});
