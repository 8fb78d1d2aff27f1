/** What the `cli` backend's activities are built from (workers/ and tests pass them). */
import type { Logger } from '../../src/logger';
import type { MeterGateway } from '../../src/meter/gateway';
import type { Sandbox } from '../sandbox';
import type { TurnNudges } from '../turn-heartbeat';

export interface CliActivityDeps {
  logger: Logger;
  /** The `claude` binary: a path, or a name looked up on PATH. */
  claudePath: string;
  /** Run outputs root; transcripts go to `<outputsDir>/<runId>/agents/<agentId>.jsonl`. */
  outputsDir: string;
  anthropic: { apiKey?: string; baseURL?: string };
  /** Variables every run gets (Temporal's address, NO_COLOR); on top of the allow-listed environment. */
  env?: Record<string, string>;
  /**
   * HOME of the `claude` processes (Claude Code keeps its sessions under it); default the worker's HOME,
   * of which only `.claude/` and `.claude.json` stay writable inside the sandbox.
   */
  agentHome?: string;
  /** Confines `claude` (and so its Bash, Read and Write tools) to the workspace; default {@link defaultSandbox}. */
  sandbox?: Sandbox;
  /** SIGTERM → SIGKILL grace period; default 5 s. */
  killGraceMs?: number;
  /** Heartbeat (and lease renewal) interval while the CLI is quiet; default 1 s. */
  heartbeatIntervalMs?: number;
  /** Default for `hangAfterS`: a run with no output for this long is ended as hung; default 10 min. */
  hangAfterMs?: number;
  /** `--setting-sources` value; default `''` (no settings files). `null` omits the flag. */
  settingSources?: string | null;
  /** The metering gateway; without one the CLI calls the API directly and costs are the CLI's own. */
  gateway?: () => Promise<MeterGateway>;
  /** Nudges a turn whose agent workflow was cancelled into noticing at once (../turn-heartbeat). */
  nudges?: TurnNudges;
}
