/**
 * Where Temporal is and how to authenticate to it, resolved the way the `temporal` CLI does: a profile of
 * `temporal.toml` (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE, else
 * `default`), overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS and
 * TEMPORAL_TLS_* (Temporal's `@temporalio/envconfig` applies the file and the variables), then by our flags.
 *
 * Everything is read here, once: certificate and key files are loaded and checked, so a bad or missing file
 * or key is a one-line {@link ConfigError} naming it, never a TLS failure minutes later. Messages never
 * carry a secret or a line of the file (a TOML error's excerpt could show an api_key).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type ClientConfigProfile,
  type ConfigDataSource,
  loadClientConfigProfile,
} from '@temporalio/envconfig';
import { ConfigError } from './errors';

/**
 * TLS to the frontend: present means on; each field absent means the system's default. A class, so that
 * logging a config (pino, JSON) prints {@link TemporalTls.toJSON}'s summary: a Buffer would otherwise be
 * written out byte by byte, the client key with it, past every redaction of strings.
 */
export class TemporalTls {
  constructor(
    /** The name the server's certificate is checked against, when it is not the address's host. */
    readonly serverName?: string,
    /** PEM of the CA that signed the server's certificate (default: the system's roots). */
    readonly serverCaCert?: Buffer,
    /** mTLS: the client certificate and its private key, both or neither. */
    readonly clientCertPair?: { crt: Buffer; key: Buffer },
  ) {}

  /** What a log or a JSON dump shows: which parts are set, never their bytes. */
  toJSON(): Record<string, unknown> {
    return {
      ...(this.serverName ? { serverName: this.serverName } : {}),
      serverCaCert: this.serverCaCert ? 'set' : 'system roots',
      clientCertPair: this.clientCertPair ? '[redacted]' : 'none',
    };
  }
}

/** The resolved connection: what the worker and every CLI command connect with. */
export interface TemporalConnection {
  address: string;
  namespace: string;
  /** Sent as `authorization: Bearer <key>`; a secret (registered for redaction, never logged). */
  apiKey?: string;
  tls?: TemporalTls;
  /** Extra gRPC headers (`grpc_meta` of the profile, TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string>;
  /** Where the address came from, for messages: `TEMPORAL_ADDRESS`, `--address`, a profile, or the default. */
  addressSource: string;
  /** The profile used, when a config file was read. */
  profile?: { name: string; file: string };
  /**
   * Keys of the config file that neither we nor envconfig know (a misspelling, or another tool's section such
   * as the `temporal` CLI's own `[profile.<name>.oauth]`): ignored, as the CLI ignores them, and named here
   * so that the worker can warn. One line, e.g. `key(s) unrecognized in profile.default: adress`.
   */
  ignoredKeys?: string;
}

export interface TemporalOverrides {
  address?: string;
  namespace?: string;
  /** `--profile`: wins over TEMPORAL_PROFILE. */
  profile?: string;
  /** `--config-file`: wins over TEMPORAL_CONFIG_FILE. */
  configFile?: string;
}

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** Where the `temporal` CLI looks for its config file when TEMPORAL_CONFIG_FILE is unset (envconfig's rule). */
export function defaultConfigFile(env: NodeJS.ProcessEnv, platform = os.platform()): string | undefined {
  let dir: string | undefined;
  if (platform === 'win32') dir = env.APPDATA;
  else if (platform === 'darwin') dir = env.HOME && path.join(env.HOME, 'Library', 'Application Support');
  else {
    const xdg = env.XDG_CONFIG_HOME;
    dir = xdg ? (path.isAbsolute(xdg) ? xdg : undefined) : env.HOME && path.join(env.HOME, '.config');
  }
  return dir ? path.join(dir, 'temporalio', 'temporal.toml') : undefined;
}

/** The first line of an error, without anything that could quote the file (TOML excerpts follow a blank line). */
function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

/**
 * Resolves the Temporal connection from `env` (empty values already removed) and flag overrides. Throws
 * {@link ConfigError} with one line naming the file, the profile or the variable at fault.
 */
export function resolveTemporal(
  env: Record<string, string | undefined>,
  overrides: TemporalOverrides = {},
): TemporalConnection {
  const named = overrides.configFile ?? env.TEMPORAL_CONFIG_FILE;
  const fileVar = overrides.configFile !== undefined ? '--config-file' : 'TEMPORAL_CONFIG_FILE';
  const file = named ? path.resolve(named) : defaultConfigFile(env);
  let data: string | undefined;
  if (file) {
    try {
      data = fs.readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? firstLine(err);
      // The default file is optional (the `temporal` CLI's rule); a file someone named is not.
      if (named || code !== 'ENOENT') throw new ConfigError(`${fileVar}: cannot read ${file} (${code})`);
    }
  }
  const profileName = overrides.profile ?? env.TEMPORAL_PROFILE;
  const profileVar = overrides.profile !== undefined ? '--profile' : 'TEMPORAL_PROFILE';
  const envVars = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
  );

  if (profileName && data === undefined) {
    // envconfig reads no profile without a file: a profile asked for and not found is still an error.
    throw new ConfigError(
      `${profileVar}: no profile "${profileName}": there is no config file${file ? ` (looked for ${file}; set TEMPORAL_CONFIG_FILE)` : ''}`,
    );
  }
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({
      ...(profileName ? { profile: profileName } : {}),
      ...(data !== undefined ? { configSource: { data } } : { disableFile: true }),
      // As the `temporal` CLI reads the same file (envconfig's default): unknown keys are ignored, not an
      // error, since the CLI itself writes some (`[profile.<name>.oauth]`). A misspelt one is still named
      // (ignoredKeys), so that the worker warns instead of silently connecting elsewhere.
      configFileStrict: false,
      overrideEnvVars: envVars,
    });
  } catch (err) {
    const line = firstLine(err);
    if (/^Profile '.*' not found/.test(line)) {
      throw new ConfigError(`${profileVar}: no profile "${profileName}" in ${file}`);
    }
    throw new ConfigError(
      `${file ?? 'temporal config'}: ${line.replace(/^Invalid TOML document: /, 'not valid TOML: ')}`,
    );
  }
  const ignoredKeys = data !== undefined ? unknownKeys(data, profileName) : undefined;
  const inFile = (key: string) => `${file}: profile.${profileName ?? 'default'}.${key}`;
  /** The name of whatever set a setting: the variable when it is set, else the file's key. */
  const source = (envName: string, key: string) => (env[envName] !== undefined ? envName : inFile(key));

  let address = profile.address;
  let addressSource = address !== undefined ? source('TEMPORAL_ADDRESS', 'address') : 'default';
  if (overrides.address !== undefined) [address, addressSource] = [overrides.address, '--address'];
  address ??= DEFAULT_TEMPORAL_ADDRESS;
  if (!HOST_PORT.test(address)) {
    throw new ConfigError(
      `${addressSource}: must be host:port, e.g. 127.0.0.1:7233 (got ${JSON.stringify(address)})`,
    );
  }
  const namespace = overrides.namespace ?? profile.namespace ?? 'default';
  if (!namespace.trim())
    throw new ConfigError(`${source('TEMPORAL_NAMESPACE', 'namespace')}: must not be empty`);

  const apiKey = profile.apiKey;
  if (apiKey !== undefined && (!apiKey.trim() || /[\s\0]/.test(apiKey))) {
    // Never the value: it is a secret, and a stray newline from `$(cat key)` is the usual cause.
    throw new ConfigError(
      `${source('TEMPORAL_API_KEY', 'api_key')}: must be one token without spaces or line breaks`,
    );
  }
  // envconfig's rule: an API key turns TLS on unless TLS is disabled explicitly.
  const tls = profile.tls?.disabled
    ? undefined
    : profile.tls
      ? loadTls(profile.tls, env, inFile)
      : apiKey !== undefined
        ? new TemporalTls()
        : undefined;
  return {
    address,
    namespace,
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(tls ? { tls } : {}),
    ...(profile.grpcMeta && Object.keys(profile.grpcMeta).length ? { metadata: profile.grpcMeta } : {}),
    addressSource,
    ...(data !== undefined && file ? { profile: { name: profileName ?? 'default', file } } : {}),
    ...(ignoredKeys ? { ignoredKeys } : {}),
  };
}

/** The first unknown key(s) of a config file envconfig's strict check finds, as one line; undefined if none. */
function unknownKeys(data: string, profileName: string | undefined): string | undefined {
  try {
    loadClientConfigProfile({
      ...(profileName ? { profile: profileName } : {}),
      configSource: { data },
      configFileStrict: true,
      disableEnv: true,
    });
    return undefined;
  } catch (err) {
    const line = firstLine(err);
    return /unrecognized/.test(line) ? line.replace(/^Validation error: /, '') : undefined;
  }
}

type TlsSettings = NonNullable<ClientConfigProfile['tls']>;

/** Reads and checks the TLS material; each error names the variable or the file's key that gave it. */
function loadTls(
  t: TlsSettings,
  env: Record<string, string | undefined>,
  inFile: (key: string) => string,
): TemporalTls {
  const read = (what: 'client_cert' | 'client_key' | 'server_ca_cert', src: ConfigDataSource | undefined) => {
    if (!src) return undefined;
    const upper = what.toUpperCase();
    const byPath = 'path' in src;
    const envName = `TEMPORAL_TLS_${upper}_${byPath ? 'PATH' : 'DATA'}`;
    const name = env[envName] !== undefined ? envName : inFile(`tls.${what}_${byPath ? 'path' : 'data'}`);
    let pem: Buffer;
    if (byPath) {
      try {
        pem = fs.readFileSync(path.resolve(src.path));
      } catch (err) {
        throw new ConfigError(
          `${name}: cannot read ${path.resolve(src.path)} (${(err as NodeJS.ErrnoException).code ?? firstLine(err)})`,
        );
      }
    } else pem = Buffer.from(src.data);
    const where = byPath ? `${path.resolve(src.path)} ` : '';
    try {
      if (what === 'client_key') crypto.createPrivateKey(pem);
      else new crypto.X509Certificate(pem);
    } catch {
      // Never the content: a key that fails to parse is still a key.
      throw new ConfigError(
        `${name}: ${where}is not a PEM ${what === 'client_key' ? 'private key' : 'certificate'}`,
      );
    }
    return { pem, name };
  };
  const crt = read('client_cert', t.clientCert);
  const key = read('client_key', t.clientKey);
  const ca = read('server_ca_cert', t.serverCACert);
  if ((crt === undefined) !== (key === undefined)) {
    const given = crt ?? key!;
    throw new ConfigError(
      `${given.name}: mTLS needs both a client certificate and its key (TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH); only the ${crt ? 'certificate' : 'key'} is given`,
    );
  }
  if (crt && key && !new crypto.X509Certificate(crt.pem).checkPrivateKey(crypto.createPrivateKey(key.pem))) {
    throw new ConfigError(
      `${key.name}: the client key does not belong to the client certificate (${crt.name})`,
    );
  }
  return new TemporalTls(
    t.serverName || undefined,
    ca?.pem,
    crt && key ? { crt: crt.pem, key: key.pem } : undefined,
  );
}

/**
 * Options for `Connection.connect` (client) and `NativeConnection.connect` (worker): both take the same
 * `address`, `tls`, `apiKey` and `metadata`.
 */
export function connectionOptions(t: TemporalConnection): {
  address: string;
  tls?: {
    serverNameOverride?: string;
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
  };
  apiKey?: string;
  metadata?: Record<string, string>;
} {
  return {
    address: t.address,
    ...(t.tls
      ? {
          tls: {
            ...(t.tls.serverName ? { serverNameOverride: t.tls.serverName } : {}),
            ...(t.tls.serverCaCert ? { serverRootCACertificate: t.tls.serverCaCert } : {}),
            ...(t.tls.clientCertPair ? { clientCertPair: t.tls.clientCertPair } : {}),
          },
        }
      : {}),
    ...(t.apiKey !== undefined ? { apiKey: t.apiKey } : {}),
    ...(t.metadata ? { metadata: t.metadata } : {}),
  };
}

/** True when connecting needs a secret (an API key or a client key): agents must never be handed one. */
export function hasCredentials(t: TemporalConnection): boolean {
  return t.apiKey !== undefined || t.tls?.clientCertPair !== undefined;
}

/** What may be logged of a connection: where, never how it authenticates. */
export function describeConnection(t: TemporalConnection): Record<string, unknown> {
  return {
    address: t.address,
    namespace: t.namespace,
    tls: t.tls ? (t.tls.clientCertPair ? 'mtls' : 'tls') : 'off',
    apiKeySet: t.apiKey !== undefined,
    ...(t.profile ? { profile: t.profile.name, configFile: t.profile.file } : {}),
    ...(t.ignoredKeys ? { ignoredKeys: t.ignoredKeys } : {}),
  };
}
