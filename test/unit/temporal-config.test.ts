/**
 * Connecting like the `temporal` CLI does (issue #15, Deliver 2), without a server: temporal.toml profiles,
 * the TEMPORAL_* variables over them, flags over both; every bad or missing file or key a one-line error
 * naming it; secrets in no error and no log line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/env';
import { ConfigError } from '../../config/errors';
import {
  connectionOptions,
  defaultConfigFile,
  describeConnection,
  hasCredentials,
  resolveTemporal,
} from '../../config/temporal';
import { createLogger } from '../../src/logger';
import { resetRedaction } from '../../src/redact';
import { runCli } from '../harness/cli';
import { makeTestPki, type TestPki } from '../harness/tls';

const API_KEY = 'tmprl-api-key-4f9c2e7d1a';
let pki: TestPki;
let dir: string;

beforeAll(() => {
  pki = makeTestPki();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-envconfig-'));
});
afterAll(() => {
  fs.rmSync(pki.dir, { recursive: true, force: true });
  fs.rmSync(dir, { recursive: true, force: true });
});

function toml(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** The one-line message of what `fn` throws, checked to be a ConfigError. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('did not throw');
}

const PROFILES = `
[profile.default]
address = "default.example:7233"
namespace = "dev"

[profile.prod]
address = "prod.tmprl.cloud:7233"
namespace = "prod.acc1"
api_key = "${API_KEY}"
[profile.prod.grpc_meta]
x-team = "ops"
`;

describe('temporal.toml profiles', () => {
  it('reads the default profile, or the one TEMPORAL_PROFILE or --profile names', () => {
    const file = toml('profiles.toml', PROFILES);
    const d = resolveTemporal({ TEMPORAL_CONFIG_FILE: file });
    expect(d).toMatchObject({
      address: 'default.example:7233',
      namespace: 'dev',
      profile: { name: 'default', file },
    });
    expect(d.apiKey).toBeUndefined();
    expect(d.tls).toBeUndefined();
    expect(d.addressSource).toBe(`${file}: profile.default.address`);

    const p = resolveTemporal({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' });
    expect(p).toMatchObject({
      address: 'prod.tmprl.cloud:7233',
      namespace: 'prod.acc1',
      apiKey: API_KEY,
      metadata: { 'x-team': 'ops' },
    });
    // An API key turns TLS on (envconfig's rule), with the system's roots.
    expect(p.tls).toBeDefined();
    expect(hasCredentials(p)).toBe(true);
    expect(connectionOptions(p)).toMatchObject({
      address: 'prod.tmprl.cloud:7233',
      apiKey: API_KEY,
      tls: {},
    });

    expect(
      resolveTemporal({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'default' }, { profile: 'prod' })
        .namespace,
    ).toBe('prod.acc1');
  });

  it('finds the default file where the temporal CLI does, and a missing default file is no error', () => {
    const home = fs.mkdtempSync(path.join(dir, 'home-'));
    expect(defaultConfigFile({ HOME: home }, 'linux')).toBe(
      path.join(home, '.config/temporalio/temporal.toml'),
    );
    expect(defaultConfigFile({ HOME: home, XDG_CONFIG_HOME: '/x' }, 'linux')).toBe(
      '/x/temporalio/temporal.toml',
    );
    expect(resolveTemporal({ HOME: home })).toMatchObject({
      address: '127.0.0.1:7233',
      namespace: 'default',
      addressSource: 'default',
    });
    fs.mkdirSync(path.join(home, '.config/temporalio'), { recursive: true });
    fs.writeFileSync(path.join(home, '.config/temporalio/temporal.toml'), PROFILES);
    expect(resolveTemporal({ HOME: home }).address).toBe('default.example:7233');
  });

  it('lets the variables override the file, and flags override both', () => {
    const file = toml('override.toml', PROFILES);
    const env = {
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'prod',
      TEMPORAL_ADDRESS: 'env.example:1',
      TEMPORAL_NAMESPACE: 'envns',
    };
    expect(resolveTemporal(env)).toMatchObject({
      address: 'env.example:1',
      namespace: 'envns',
      apiKey: API_KEY,
      addressSource: 'TEMPORAL_ADDRESS',
    });
    expect(resolveTemporal({ ...env, TEMPORAL_API_KEY: 'other-key-123456' }).apiKey).toBe('other-key-123456');
    expect(resolveTemporal(env, { address: 'flag.example:2', namespace: 'flagns' })).toMatchObject({
      address: 'flag.example:2',
      namespace: 'flagns',
      addressSource: '--address',
    });
    // TEMPORAL_TLS=false turns off the TLS an API key would turn on.
    expect(resolveTemporal({ ...env, TEMPORAL_TLS: 'false' }).tls).toBeUndefined();
  });

  it('makes a missing, unreadable or bad file, a missing profile and a misspelt key one line naming it', () => {
    const missing = path.join(dir, 'nope.toml');
    expect(errorOf(() => resolveTemporal({ TEMPORAL_CONFIG_FILE: missing }))).toBe(
      `TEMPORAL_CONFIG_FILE: cannot read ${missing} (ENOENT)`,
    );
    expect(errorOf(() => resolveTemporal({}, { configFile: missing }))).toBe(
      `--config-file: cannot read ${missing} (ENOENT)`,
    );

    // A TOML error's excerpt would show the lines around it, the api_key among them: only the first line.
    const bad = toml('bad.toml', `[profile.default]\naddress = "x\napi_key = "${API_KEY}"\n`);
    const badMessage = errorOf(() => resolveTemporal({ TEMPORAL_CONFIG_FILE: bad }));
    expect(badMessage).toMatch(new RegExp(`^${bad}: not valid TOML: `));
    expect(badMessage).not.toContain(API_KEY);

    const file = toml('named.toml', PROFILES);
    expect(errorOf(() => resolveTemporal({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' }))).toBe(
      `TEMPORAL_PROFILE: no profile "staging" in ${file}`,
    );
    expect(errorOf(() => resolveTemporal({ HOME: path.join(dir, 'no-home') }, { profile: 'staging' }))).toBe(
      `--profile: no profile "staging": there is no config file (looked for ${path.join(dir, 'no-home/.config/temporalio/temporal.toml')}; set TEMPORAL_CONFIG_FILE)`,
    );
    const addr = toml('addr.toml', '[profile.default]\naddress = "no-port"\n');
    expect(errorOf(() => resolveTemporal({ TEMPORAL_CONFIG_FILE: addr }))).toBe(
      `${addr}: profile.default.address: must be host:port, e.g. 127.0.0.1:7233 (got "no-port")`,
    );
  });

  it('ignores unknown keys as the temporal CLI does (its own oauth section among them), and names them', () => {
    // The CLI reads the file with envconfig's default (not strict) and writes `[profile.<name>.oauth]` itself.
    const cli = toml(
      'cli-written.toml',
      '[profile.default]\naddress = "cloud.example:7233"\nnamespace = "ns"\n\n[profile.default.oauth]\nclient_id = "x"\n',
    );
    const fromCli = resolveTemporal({ TEMPORAL_CONFIG_FILE: cli });
    expect(fromCli).toMatchObject({ address: 'cloud.example:7233', namespace: 'ns' });
    expect(fromCli.ignoredKeys).toBe('key(s) unrecognized in profile.default: oauth');
    // A misspelt key is not an error any more, but it is named (the worker warns with it).
    const typo = toml('typo.toml', '[profile.default]\nadress = "a:1"\n');
    const t = resolveTemporal({ TEMPORAL_CONFIG_FILE: typo });
    expect(t.address).toBe('127.0.0.1:7233');
    expect(t.ignoredKeys).toBe('key(s) unrecognized in profile.default: adress');
    expect(describeConnection(t)).toMatchObject({
      ignoredKeys: 'key(s) unrecognized in profile.default: adress',
    });
    // A file with only known keys names none.
    expect(
      resolveTemporal({ TEMPORAL_CONFIG_FILE: toml('clean.toml', PROFILES) }).ignoredKeys,
    ).toBeUndefined();
  });

  it('refuses an API key with a line break without printing it', () => {
    const message = errorOf(() => resolveTemporal({ TEMPORAL_API_KEY: `${API_KEY}\n` }));
    expect(message).toBe('TEMPORAL_API_KEY: must be one token without spaces or line breaks');
    const file = toml('spacekey.toml', `[profile.default]\napi_key = "${API_KEY} x"\n`);
    expect(errorOf(() => resolveTemporal({ TEMPORAL_CONFIG_FILE: file }))).toBe(
      `${file}: profile.default.api_key: must be one token without spaces or line breaks`,
    );
  });
});

describe('TLS and mTLS', () => {
  it('loads the CA, the client certificate and key from the variables or the file', () => {
    const env = {
      TEMPORAL_ADDRESS: 'localhost:7233',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
    };
    const t = resolveTemporal(env);
    expect(t.tls?.clientCertPair?.key.toString()).toBe(fs.readFileSync(pki.clientKey, 'utf8'));
    expect(t.tls?.serverCaCert?.toString()).toBe(fs.readFileSync(pki.caCert, 'utf8'));
    expect(connectionOptions(t).tls).toMatchObject({ serverNameOverride: 'localhost' });
    expect(hasCredentials(t)).toBe(true);

    const file = toml(
      'mtls.toml',
      [
        '[profile.default]',
        'address = "localhost:7233"',
        '[profile.default.tls]',
        `client_cert_path = "${pki.clientCert}"`,
        `client_key_data = """\n${fs.readFileSync(pki.clientKey, 'utf8')}"""`,
        `server_ca_cert_path = "${pki.caCert}"`,
      ].join('\n'),
    );
    expect(resolveTemporal({ TEMPORAL_CONFIG_FILE: file }).tls?.clientCertPair).toBeDefined();
    // TLS on without a client pair: server authentication only, nothing secret.
    const plain = resolveTemporal({ TEMPORAL_TLS: 'true' });
    expect(plain.tls).toBeDefined();
    expect(hasCredentials(plain)).toBe(false);
  });

  it('makes a missing or bad certificate or key, half a pair and a foreign key one line naming it, never the key', () => {
    const keyText = fs.readFileSync(pki.clientKey, 'utf8');
    const missing = path.join(dir, 'missing.pem');
    expect(
      errorOf(() =>
        resolveTemporal({
          TEMPORAL_TLS_CLIENT_CERT_PATH: missing,
          TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
        }),
      ),
    ).toBe(`TEMPORAL_TLS_CLIENT_CERT_PATH: cannot read ${missing} (ENOENT)`);

    // A certificate where the key should be: named, and no PEM content in the message.
    const m = errorOf(() =>
      resolveTemporal({
        TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientCert,
      }),
    );
    expect(m).toBe(`TEMPORAL_TLS_CLIENT_KEY_PATH: ${pki.clientCert} is not a PEM private key`);
    const broken = toml('broken.key', keyText.slice(0, 80));
    const brokenMessage = errorOf(() =>
      resolveTemporal({
        TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: broken,
      }),
    );
    expect(brokenMessage).toBe(`TEMPORAL_TLS_CLIENT_KEY_PATH: ${broken} is not a PEM private key`);
    expect(errorOf(() => resolveTemporal({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.clientKey }))).toBe(
      `TEMPORAL_TLS_SERVER_CA_CERT_PATH: ${pki.clientKey} is not a PEM certificate`,
    );
    expect(errorOf(() => resolveTemporal({ TEMPORAL_TLS_CLIENT_KEY_DATA: 'not a key at all' }))).toBe(
      'TEMPORAL_TLS_CLIENT_KEY_DATA: is not a PEM private key',
    );
    expect(errorOf(() => resolveTemporal({ TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey }))).toMatch(
      /^TEMPORAL_TLS_CLIENT_KEY_PATH: mTLS needs both a client certificate and its key .*only the key is given$/,
    );
    const foreign = errorOf(() =>
      resolveTemporal({
        TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: pki.strangerKey,
      }),
    );
    expect(foreign).toBe(
      'TEMPORAL_TLS_CLIENT_KEY_PATH: the client key does not belong to the client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH)',
    );
    const file = toml('halfpair.toml', `[profile.default.tls]\nclient_cert_path = "${missing}"\n`);
    expect(errorOf(() => resolveTemporal({ TEMPORAL_CONFIG_FILE: file }))).toBe(
      `${file}: profile.default.tls.client_cert_path: cannot read ${missing} (ENOENT)`,
    );
  });
});

describe('secrets', () => {
  it('never reach a log line, even when a whole config is logged', () => {
    resetRedaction();
    const config = loadConfig({
      TEMPORAL_API_KEY: API_KEY,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
    });
    expect(config.temporal.apiKey).toBe(API_KEY);
    const lines: string[] = [];
    const log = createLogger('info', {}, { write: (l: string) => void lines.push(l) });
    log.info({ config }, 'the whole config');
    log.info({ temporal: config.temporal, tls: config.temporal.tls }, 'its connection');
    log.info(`a message quoting the key ${API_KEY}`);
    log.error({ err: new Error(`failed with ${API_KEY}`) }, 'an error');
    const out = lines.join('');
    expect(out).toContain('the whole config');
    expect(out).toContain('"clientCertPair":"[redacted]"');
    expect(out).not.toContain(API_KEY);
    const keyBody = fs.readFileSync(pki.clientKey, 'utf8').split('\n')[1]!;
    expect(keyBody.length).toBeGreaterThan(20);
    expect(out).not.toContain(keyBody);
    expect(out).not.toContain('PRIVATE KEY');
    // Nor as bytes: a Buffer logged as JSON is a list of numbers.
    const keyBytes = [...fs.readFileSync(pki.clientKey).subarray(0, 12)].join(',');
    expect(out).not.toContain(keyBytes);
  });

  it('the CLI prints a bad profile as one line and exits 2, with no key in its output', async () => {
    const file = toml('cli.toml', `[profile.default]\napi_key = "${API_KEY}"\naddress = "x\n`);
    const r = await runCli(['run', 'list'], { TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: '' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(new RegExp(`^orchestrator: ${file}: not valid TOML: [^\\n]*$`));
    expect(r.stdout + r.stderr).not.toContain(API_KEY);
    const p = await runCli(
      ['run', 'list', '--profile', 'nope', '--config-file', file.replace('cli', 'profiles')],
      {},
    );
    expect(p.code).toBe(2);
    expect(p.stderr.trim()).toBe(
      `orchestrator: --profile: no profile "nope" in ${file.replace('cli', 'profiles')}`,
    );
  }, 120_000);
});
