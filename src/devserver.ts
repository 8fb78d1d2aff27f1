/**
 * The real Temporal server for development, tests, the demo and CI: `temporal server start-dev` from the
 * Temporal CLI, located or built by scripts/ensure-temporal.sh. State lives in a SQLite file so runs
 * survive a server restart.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SearchAttributes } from './shared/names';

const execFileP = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Locates or builds the Temporal CLI (progress on stderr) and returns its path. */
export async function ensureTemporalCli(): Promise<string> {
  const script = path.join(ROOT, 'scripts', 'ensure-temporal.sh');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    // 'close', not 'exit': a process can exit before its stdout is all read, which left `out` empty and
    // failed a locate that had succeeded (seen in bench:startup on a quiet machine).
    child.on('close', (code) => {
      const bin = out.trim().split('\n').pop() ?? '';
      if (code === 0 && bin) resolve(bin);
      else
        reject(
          new Error(`could not locate or build the Temporal CLI (scripts/ensure-temporal.sh exit ${code})`),
        );
    });
  });
}

/**
 * Returns a TCP port that was free a moment ago on 127.0.0.1. It is drawn from below the kernel's
 * ephemeral range (32768+), so the outgoing connections of a busy machine cannot take it between this
 * check and the server's bind; only another listener could, and startDevServer retries on that.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(candidate)) return candidate;
  }
  return listenAnywhere();
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function listenAnywhere(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export interface DevServerOptions {
  cliPath: string;
  /** SQLite file; created if missing. */
  dbFile: string;
  port?: number;
  uiPort?: number;
  headless?: boolean;
  /** Where the server's own output goes. */
  logFile: string;
  /** Detached servers outlive this process (used by `orchestrator server start` and `make demo`). */
  detached?: boolean;
  readyTimeoutMs?: number;
  /**
   * SQLite pragmas (`name=value`, `--sqlite-pragma`). The test tier's throwaway server asks for
   * `synchronous=off` (test/harness/global-setup.ts); a user's server keeps SQLite's safe defaults.
   */
  sqlitePragmas?: readonly string[];
}

/** How a dev server's process ended, with the last lines of its log (the reason, usually). */
export interface DevServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  reason: string;
}

/** One line saying how the server ended, e.g. `killed by SIGKILL` or `exited with code 1: <log line>`. */
export function describeExit(e: DevServerExit): string {
  const how = e.signal ? `killed by ${e.signal}` : `exited with code ${e.code ?? '?'}`;
  return e.reason ? `${how}: ${e.reason}` : how;
}

/** The last non-empty line of a log file, cut to one screen line. */
function lastLogLine(file: string): string {
  try {
    const lines = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim());
    return (lines.at(-1) ?? '').slice(0, 300);
  } catch {
    return '';
  }
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  /** The server's Prometheus metrics (bench:fleet reads its request counts). */
  metricsUrl: string;
  pid: number;
  dbFile: string;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Settles when the server's process ends, for whatever reason (not for a detached server). */
  exited: Promise<DevServerExit>;
}

/** A start that failed because a port the server wanted was taken between choosing and binding it. */
class PortTaken extends Error {}

/**
 * Starts `temporal server start-dev` and resolves once its frontend answers a health check. The server
 * also picks ports of its own for its internal services; on a busy machine one of them (or one of ours)
 * can be taken before it binds, so a start that dies of "address already in use" is tried again, with
 * fresh ports wherever the caller did not fix one.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchDevServer(opts);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= 4) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function launchDevServer(opts: DevServerOptions): Promise<DevServer> {
  const port = opts.port ?? (await freePort());
  const uiPort = opts.headless ? undefined : (opts.uiPort ?? (await freePort()));
  const metricsPort = await freePort();
  fs.mkdirSync(path.dirname(opts.dbFile), { recursive: true });
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    opts.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    // The HTTP API and metrics ports default to fixed numbers; pick free ones so servers can coexist.
    '--http-port',
    String(await freePort()),
    '--metrics-port',
    String(metricsPort),
    '--log-level',
    'warn',
  ];
  for (const p of opts.sqlitePragmas ?? []) args.push('--sqlite-pragma', p);
  if (uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  for (const sa of Object.values(SearchAttributes)) args.push('--search-attribute', `${sa.name}=${sa.type}`);

  const logStart = fs.existsSync(opts.logFile) ? fs.statSync(opts.logFile).size : 0;
  const log = fs.openSync(opts.logFile, 'a');
  const child = spawn(opts.cliPath, args, {
    stdio: ['ignore', log, log],
    detached: opts.detached ?? false,
  });
  fs.closeSync(log);
  if (opts.detached) child.unref();
  let exited: number | null | undefined;
  const ended = new Promise<DevServerExit>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = code;
      resolve({ code, signal, reason: lastLogLine(opts.logFile) });
    }),
  );

  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited !== undefined) {
      const written = fs.readFileSync(opts.logFile).subarray(logStart).toString('utf8');
      const tail = written.split('\n').slice(-15).join('\n');
      const message = `temporal server start-dev exited with code ${exited}:\n${tail}`;
      throw /address already in use/i.test(written) ? new PortTaken(message) : new Error(message);
    }
    if ((await portOpen(port)) && (await healthy(opts.cliPath, address))) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `temporal server start-dev did not become healthy on ${address} (log: ${opts.logFile})`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const pid = child.pid ?? -1;
  return {
    address,
    uiUrl: uiPort === undefined ? undefined : `http://127.0.0.1:${uiPort}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    pid,
    dbFile: opts.dbFile,
    stop: () => stopPid(pid),
    exited: ended,
  };
}

async function healthy(cliPath: string, address: string): Promise<boolean> {
  try {
    await execFileP(cliPath, ['operator', 'cluster', 'health', '--address', address], { timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to 10 s, then SIGKILL. */
export async function stopPid(pid: number): Promise<void> {
  if (pid <= 0 || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
}

/** State of the detached server that `orchestrator server start` and `make demo` share. */
export interface ServerState {
  pid: number;
  address: string;
  uiUrl?: string;
  dbFile: string;
}

export function readServerState(home: string): ServerState | undefined {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(home, 'server.json'), 'utf8')) as ServerState;
    return alive(s.pid) ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Returns the project's detached dev server, starting it if needed (SQLite under `<home>/temporal.db`).
 * Reused across `make demo` runs so that earlier runs stay visible in the Web UI.
 */
export async function ensureDetachedServer(
  home: string,
  port?: number,
  uiPort?: number,
): Promise<ServerState> {
  const existing = readServerState(home);
  if (existing) return existing;
  // Another server (another checkout, a user's own) may hold the usual ports: then take free ones.
  if (port !== undefined && (await portOpen(port))) {
    process.stderr.write(`port ${port} is taken; starting this project's dev server on free ports instead\n`);
    port = undefined;
    uiPort = undefined;
  }
  if (uiPort !== undefined && (await portOpen(uiPort))) uiPort = undefined;
  const cliPath = await ensureTemporalCli();
  const srv = await startDevServer({
    cliPath,
    dbFile: path.join(home, 'temporal.db'),
    logFile: path.join(home, 'temporal.log'),
    port,
    uiPort,
    detached: true,
  });
  const state: ServerState = { pid: srv.pid, address: srv.address, uiUrl: srv.uiUrl, dbFile: srv.dbFile };
  writeServerState(home, state);
  return state;
}

/** Records the project's server, so that later commands in this project talk to it (see configFrom). */
export function writeServerState(home: string, state: ServerState): void {
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(path.join(home, 'server.json'), JSON.stringify(state, null, 2));
}

/** Forgets the recorded server if it is still `pid` (another one may have replaced it). */
export function clearServerState(home: string, pid: number): void {
  const file = path.join(home, 'server.json');
  try {
    if ((JSON.parse(fs.readFileSync(file, 'utf8')) as ServerState).pid === pid) fs.rmSync(file);
  } catch {
    // Nothing recorded.
  }
}
