/**
 * Connecting like the `temporal` CLI does, for real (issue #15, Deliver 2): the `orchestrator worker`
 * process and the `orchestrator` CLI reach the dev server only through a front that requires mTLS (a
 * client certificate from the test CA) and an API key, both given by a temporal.toml profile. A run
 * started by the CLI completes on that worker; a stranger's certificate or a wrong key is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/cli';
import { createTestEnv, spawnWorkerProcess, tempDir, type TestEnv } from '../harness/temporal';
import { makeTestPki, type TestPki } from '../harness/tls';
import { startTlsProxy, type TlsProxy } from '../harness/tls-proxy';

const API_KEY = 'orch-test-api-key-7c1d9e';
let t: TestEnv;
let pki: TestPki;
let proxy: TlsProxy;
let dir: string;

beforeAll(async () => {
  t = await createTestEnv();
  pki = makeTestPki();
  proxy = await startTlsProxy({ pki, upstream: t.config.temporal.address, apiKey: API_KEY });
  dir = tempDir('orch-tls-');
}, 120_000);
afterAll(async () => {
  await proxy?.close();
  await t?.close();
});

/** A temporal.toml whose `secure` profile reaches the dev server through the proxy only. */
function profileFile(cert = pki.clientCert, key = pki.clientKey, apiKey = API_KEY): string {
  const file = path.join(dir, `temporal-${Math.random().toString(36).slice(2, 8)}.toml`);
  fs.writeFileSync(
    file,
    [
      '[profile.secure]',
      `address = "${proxy.address}"`,
      `namespace = "${t.config.temporal.namespace}"`,
      `api_key = "${apiKey}"`,
      '[profile.secure.tls]',
      `client_cert_path = "${cert}"`,
      `client_key_path = "${key}"`,
      `server_ca_cert_path = "${pki.caCert}"`,
      'server_name = "localhost"',
    ].join('\n'),
  );
  return file;
}

/** The CLI's environment: this test's queue and outputs, the profile, and no direct address. */
function secureEnv(file: string): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: '',
    TEMPORAL_CONFIG_FILE: file,
    TEMPORAL_PROFILE: 'secure',
    ORCHESTRATOR_TASK_QUEUE: t.taskQueue,
    ORCHESTRATOR_OUTPUTS_DIR: t.config.outputsDir,
  };
}

describe('a cluster that requires mTLS and an API key', () => {
  it('the worker and the CLI connect with the profile; a run completes; wrong credentials are refused in one line', async () => {
    const file = profileFile();
    const worker = spawnWorkerProcess(t, secureEnv(file));
    let stderr = '';
    worker.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      const ws = tempDir('orch-tls-ws-');
      const runId = `tls-${Date.now()}`;
      const r = await runCli(
        ['run', 'start', '--intake', 'examples/minimal.yaml', '--workspace', ws, '--run-id', runId, '--wait'],
        secureEnv(file),
        300_000,
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Step 2\/2 development\s+→ CP2/);
      const status = await runCli(['run', 'status', runId, '--json'], secureEnv(file));
      expect(JSON.parse(status.stdout)).toMatchObject({ state: 'completed' });

      // Both went through the front with the client certificate: the worker polled, the CLI started.
      const paths = proxy.calls.map((c) => c.path.split('/').pop());
      expect(paths).toContain('PollWorkflowTaskQueue');
      expect(paths).toContain('StartWorkflowExecution');
      expect(new Set(proxy.calls.map((c) => c.clientCn))).toEqual(new Set(['client']));
      expect(proxy.refused).toBe(0);
      // The worker says how it connects, never with what.
      expect(stderr).not.toContain(API_KEY);
    } finally {
      worker.kill('SIGTERM');
      await new Promise((resolve) => worker.once('exit', resolve));
    }

    // A wrong API key: refused by the cluster, one line, the key not echoed.
    const wrongKey = await runCli(
      ['run', 'list'],
      secureEnv(profileFile(undefined, undefined, 'wrong-key-000000')),
    );
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrongKey.stderr).toMatch(/: credentials refused \(bad api key\)\. Check the API key/);
    expect(wrongKey.stderr + wrongKey.stdout).not.toContain('wrong-key-000000');
    expect(proxy.refused).toBeGreaterThan(0);

    // A certificate the cluster's CA did not sign: the handshake fails, said in one line.
    const stranger = await runCli(['run', 'list'], secureEnv(profileFile(pki.strangerCert, pki.strangerKey)));
    expect(stranger.code).toBe(1);
    expect(stranger.stderr.trim()).toMatch(
      new RegExp(
        `^orchestrator: cannot reach Temporal at ${proxy.address} \\(.*profile\\.secure\\.address\\): `,
      ),
    );
    expect(stranger.stderr.trim().split('\n')).toHaveLength(1);
  }, 600_000);
});
