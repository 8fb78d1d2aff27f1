/**
 * Confinement of every program an agent chooses: `run_command`, script agents, gate commands and the
 * `claude` CLI (whose Bash, Read and Write tools run inside with it). One {@link Sandbox} per worker
 * knows which folders to hide (outputs, the worker's state and HOME, the folders holding workspaces) and
 * whether bubblewrap works here; {@link Sandbox.wrap} turns an argv into the command to spawn.
 *
 * Without a usable bwrap the fallback is a scrubbed environment and the workspace as working directory
 * (plus the path checks of the api tools); the worker says so in one line at start and `run status`
 * repeats it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bwrapArgs, type SandboxPolicy } from './bwrap';
import { childEnv } from './env';

export { childEnv, modelCredentialEnv, INHERITED_ENV, isForbiddenExtra } from './env';
export { bwrapArgs, mountPlan, type SandboxPolicy } from './bwrap';

const execFileP = promisify(execFile);

/** The repository root: the orchestrator's own code stays visible (read-only) to agents that call its CLI. */
const TOOL_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Files no sandboxed program may read. */
export const DENIED_FILES = ['/etc/shadow', '/etc/gshadow', '/etc/passwd', '/etc/group'];

export type SandboxState =
  { kind: 'bwrap'; bwrap: string; version: string; denyFile: string } | { kind: 'none'; reason: string };

/** One line for the worker's start and `run status`. */
export function describeSandbox(s: SandboxState): string {
  return s.kind === 'bwrap'
    ? `sandbox: ${s.version} (agent commands see only their workspace, a scrubbed environment, no network for tools and gates)`
    : `sandbox: NONE (${s.reason}); agent commands run with a scrubbed environment in their workspace only — install bubblewrap (apt-get install bubblewrap) for real confinement`;
}

export interface SandboxOptions {
  /** Run outputs root: hidden from every sandboxed program. */
  outputsDir: string;
  /** The worker's state folder (server database, pid files): hidden. */
  stateDir?: string;
  /** Extra folders to hide. */
  hide?: string[];
  /**
   * `ORCHESTRATOR_SANDBOX=off` forces the fallback (to test it, or where bwrap misbehaves);
   * `ORCHESTRATOR_SANDBOX_WRITABLE=/a:/b` adds folders every sandboxed program may write (a shared cache,
   * or the control folder through which tests pace their script agents).
   */
  env?: NodeJS.ProcessEnv;
}

/** What to run: `file args` in `cwd` with exactly `env`. */
export interface WrappedCommand {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  sandboxed: boolean;
}

export interface WrapOptions {
  workspace: string;
  cwd?: string;
  /** Keep the host network (script agents signal Temporal; `claude` calls the model). */
  network: boolean;
  /** Variables set by the activity (trusted). */
  fixed?: Record<string, string | undefined>;
  /** Variables from the workflow or intake (filtered by the allow-list). */
  extra?: Record<string, string>;
  /** Further writable folders (`claude`'s HOME). */
  writable?: string[];
  /** Further folders visible read-only, even under a hidden one (a team agent's tool socket). */
  readable?: string[];
  /** HOME for the program; default a private scratch folder inside the sandbox. */
  home?: string;
}

const SCRATCH = path.join(os.tmpdir(), '.orchestrator-scratch');

export interface Sandbox {
  /** Whether bwrap works here (probed once). */
  state(): Promise<SandboxState>;
  /** The command that runs `argv` confined to `o.workspace`. */
  wrap(argv: readonly string[], o: WrapOptions): Promise<WrappedCommand>;
}

/** Builds the worker's sandbox. */
export function createSandbox(opts: SandboxOptions): Sandbox {
  const env = opts.env ?? process.env;
  let probed: Promise<SandboxState> | undefined;
  const state = () => (probed ??= probeBwrap(env));
  const sharedWritable = (env.ORCHESTRATOR_SANDBOX_WRITABLE ?? '')
    .split(path.delimiter)
    .filter((d) => d && path.isAbsolute(d));

  function policy(o: WrapOptions): SandboxPolicy {
    const workspace = path.resolve(o.workspace);
    const home = env.HOME ? path.resolve(env.HOME) : undefined;
    const hide = [
      os.tmpdir(),
      '/tmp',
      '/var/tmp',
      path.dirname(workspace),
      opts.outputsDir,
      ...(opts.stateDir ? [opts.stateDir] : []),
      ...(home ? [home] : []),
      '/root',
      '/home',
      ...(opts.hide ?? []),
    ].filter(exists);
    const pathDirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d && path.isAbsolute(d));
    const reveal = [...pathDirs, TOOL_ROOT, path.dirname(process.execPath), ...(o.readable ?? [])].filter(
      exists,
    );
    const shadow = path.join(workspace, '.orchestrator');
    const programEnv = childEnv({
      worker: env,
      home: o.home ?? SCRATCH,
      tmpdir: SCRATCH,
      fixed: o.fixed,
      extra: o.extra,
    });
    return {
      workspace,
      cwd: o.cwd ? path.resolve(o.cwd) : workspace,
      writable: [...(o.writable ?? []), ...sharedWritable].filter(exists),
      hide,
      reveal,
      readOnlyInside: exists(shadow) ? [shadow] : [],
      denyFiles: DENIED_FILES.filter(exists),
      network: o.network,
      env: programEnv,
      scratch: SCRATCH,
    };
  }

  return {
    state,
    async wrap(argv, o) {
      const s = await state();
      if (s.kind === 'bwrap') {
        const p = policy(o);
        const isRoot = process.getuid?.() === 0;
        return {
          file: s.bwrap,
          args: bwrapArgs(p, argv, { denyFile: s.denyFile, isRoot }),
          cwd: p.workspace,
          // bwrap's own environment is the program's (see bwrapArgs: never in argv).
          env: p.env,
          sandboxed: true,
        };
      }
      const [file = '', ...args] = argv;
      return {
        file,
        args,
        cwd: o.cwd ? path.resolve(o.cwd) : path.resolve(o.workspace),
        env: childEnv({ worker: env, home: o.home, fixed: o.fixed, extra: o.extra }),
        sandboxed: false,
      };
    },
  };
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

/** Finds bwrap and runs a tiny confined command with it; any failure means "no sandbox", with the reason. */
async function probeBwrap(env: NodeJS.ProcessEnv): Promise<SandboxState> {
  if (env.ORCHESTRATOR_SANDBOX === 'off') return { kind: 'none', reason: 'ORCHESTRATOR_SANDBOX=off' };
  const bwrap = (env.PATH ?? '/usr/bin:/bin')
    .split(path.delimiter)
    .map((d) => path.join(d, 'bwrap'))
    .find((f) => exists(f));
  if (!bwrap) return { kind: 'none', reason: 'bwrap not found on PATH' };
  try {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orchestrator-sandbox-'));
    const denyFile = path.join(stateDir, 'denied');
    fs.writeFileSync(denyFile, '', { mode: 0o000 });
    fs.chmodSync(denyFile, 0o000);
    const probeWs = path.join(stateDir, 'ws');
    fs.mkdirSync(probeWs);
    const version = (await execFileP(bwrap, ['--version'], { timeout: 10_000 })).stdout.trim();
    const policy: SandboxPolicy = {
      workspace: probeWs,
      hide: [os.tmpdir()],
      denyFiles: DENIED_FILES.filter(exists),
      network: false,
      env: { PATH: env.PATH ?? '/usr/bin:/bin' },
      scratch: SCRATCH,
    };
    const args = bwrapArgs(policy, ['sh', '-c', 'echo ok > probe'], {
      denyFile,
      isRoot: process.getuid?.() === 0,
    });
    await execFileP(bwrap, args, { timeout: 10_000, env: { PATH: env.PATH ?? '/usr/bin:/bin' } });
    if (fs.readFileSync(path.join(probeWs, 'probe'), 'utf8').trim() !== 'ok')
      return { kind: 'none', reason: 'bwrap ran but its probe wrote nothing' };
    return { kind: 'bwrap', bwrap, version: version || 'bubblewrap', denyFile };
  } catch (err) {
    const msg = ((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n')[0];
    return { kind: 'none', reason: `bwrap does not work here: ${msg ?? 'unknown error'}` };
  }
}

let fallbackSandbox: Sandbox | undefined;

/**
 * The sandbox of a process that has no worker configuration at hand (the CLI's `governance check`,
 * direct calls in tests): hides `$ORCHESTRATOR_OUTPUTS_DIR` (default `./outputs`) and `./.orchestrator`.
 */
export function defaultSandbox(): Sandbox {
  return (fallbackSandbox ??= createSandbox({
    outputsDir: path.resolve(process.env.ORCHESTRATOR_OUTPUTS_DIR ?? 'outputs'),
    stateDir: path.resolve(process.env.ORCHESTRATOR_HOME ?? '.orchestrator'),
  }));
}
