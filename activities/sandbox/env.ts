/**
 * THE allow-list of what a child process's environment may hold. Every process an activity starts
 * (agents, tools, gate commands, scripts, `claude`) gets its environment from {@link childEnv}: nothing
 * of the worker's environment is inherited except the few variables named in {@link INHERITED_ENV}.
 *
 * Model credentials are the one exception, and deliberately separate: {@link modelCredentialEnv} is
 * called by the `claude` backend alone (the SDK gets the key in-process, never through an environment).
 * With a metering gateway holding the key, what it is given is the gateway's stand-in (src/meter/gateway).
 */

/** Worker variables a child may see: what programs need to run at all (no credentials, no config). */
export const INHERITED_ENV = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TERM', 'USER', 'LOGNAME'] as const;

/**
 * Names a caller-supplied extra (an intake's `env:`, a workflow's `ORCHESTRATOR_*`) may not set:
 * credentials and endpoints of the model and of Temporal, and hooks that change how every program loads.
 */
const FORBIDDEN_EXTRA =
  /^(ANTHROPIC_|CLAUDE_CODE_|CLAUDE_CONFIG_DIR$|TEMPORAL_API_KEY$|TEMPORAL_TLS|LD_|DYLD_|NODE_OPTIONS$|BASH_ENV$|ENV$)/;

/** True when an extra variable of this name is refused (and dropped) by {@link childEnv}. */
export function isForbiddenExtra(name: string): boolean {
  return FORBIDDEN_EXTRA.test(name);
}

export interface ChildEnvOptions {
  /** Where inherited values come from; default `process.env`. */
  worker?: NodeJS.ProcessEnv;
  /** HOME and TMPDIR the child gets (inside the sandbox these are private scratch directories). */
  home?: string;
  tmpdir?: string;
  /** Values the activity itself sets (trusted, e.g. NO_COLOR, the session marker). */
  fixed?: Record<string, string | undefined>;
  /** Values from the workflow or the intake (untrusted names are filtered by {@link isForbiddenExtra}). */
  extra?: Record<string, string>;
}

/** Builds a child's complete environment from the allow-list; nothing else leaks through. */
export function childEnv(opts: ChildEnvOptions = {}): Record<string, string> {
  const worker = opts.worker ?? process.env;
  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    const v = worker[name];
    if (v) env[name] = v;
  }
  env.HOME = opts.home ?? worker.HOME ?? '/';
  if (opts.tmpdir ?? worker.TMPDIR) env.TMPDIR = opts.tmpdir ?? worker.TMPDIR ?? '/tmp';
  for (const [k, v] of Object.entries(opts.extra ?? {})) if (!isForbiddenExtra(k)) env[k] = v;
  for (const [k, v] of Object.entries(opts.fixed ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * The model endpoint and key for the `claude` CLI: the only place an API key is put into a child's
 * environment. (The api backend passes it to `@anthropic-ai/sdk` in-process.)
 */
export function modelCredentialEnv(anthropic: { apiKey?: string; baseURL?: string }): Record<string, string> {
  return {
    ...(anthropic.baseURL ? { ANTHROPIC_BASE_URL: anthropic.baseURL } : {}),
    ...(anthropic.apiKey ? { ANTHROPIC_API_KEY: anthropic.apiKey } : {}),
  };
}
