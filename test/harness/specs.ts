/** Intake specs shared by engine tests. */
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import type { Gates } from './gates';

/**
 * The agent-turn heartbeat timeout (seconds) of tests that SIGKILL a worker while a turn runs: its turn is
 * retried this long after its last beat instead of the default 30 s. The same product option a user sets
 * (`constraints.agent_heartbeat_timeout_s`, a team policy's `agent.heartbeat_timeout_s`); 10 s was every
 * turn's timeout before the default became 30 s (src/shared/failures AGENT_TURN_HEARTBEAT_TIMEOUT).
 */
export const KILL_TEST_HEARTBEAT_S = 10;

/** `spec` with the agent-turn heartbeat timeout of tests that kill workers mid-turn. */
export function withKillHeartbeat(spec: ProjectSpec, seconds = KILL_TEST_HEARTBEAT_S): ProjectSpec {
  return { ...spec, constraints: { ...spec.constraints, agent_heartbeat_timeout_s: seconds } };
}

/** The heartbeat timeouts (ms) of the activities of type `type` scheduled in `history`, in order. */
export function scheduledHeartbeatTimeouts(
  history: { events?: readonly unknown[] | null },
  type: string,
): number[] {
  const out: number[] = [];
  for (const e of (history.events ?? []) as Array<{
    activityTaskScheduledEventAttributes?: {
      activityType?: { name?: string | null } | null;
      heartbeatTimeout?: { seconds?: unknown; nanos?: number | null } | null;
    } | null;
  }>) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityType?.name !== type) continue;
    const t = a.heartbeatTimeout;
    out.push(Number(t?.seconds ?? 0) * 1000 + Math.round((t?.nanos ?? 0) / 1e6));
  }
  return out;
}

export const PHASES = ['planning', 'architecture', 'data', 'development', 'qa', 'documentation'] as const;

/** Six script phases; each writes, changes and deletes files so that a restore has real work to undo. */
export function sixPhaseSpec(gates: Gates, gated: readonly string[] = []): ProjectSpec {
  const work: Record<(typeof PHASES)[number], string> = {
    planning: "printf '# Plan\\n- forecast\\n' > plan.md && printf 'tmp' > scratch.txt",
    architecture:
      "printf '# Architecture\\n' > ARCHITECTURE.md && printf -- '- dashboard\\n' >> plan.md && chmod +x ARCHITECTURE.md",
    data: "mkdir -p data && printf 'create table t(id int);\\n' > data/schema.sql && rm -f scratch.txt && printf '\\000\\001\\002' > data/blob.bin",
    development:
      "mkdir -p src && printf 'export const a = 1;\\n' > src/a.ts && printf 'changed\\n' > plan.md",
    qa: "mkdir -p tests && printf 'all green\\n' > tests/report.md",
    documentation: "printf '# Readme\\n' > README.md",
  };
  const artifacts: Record<(typeof PHASES)[number], string[]> = {
    planning: ['plan.md'],
    architecture: ['ARCHITECTURE.md'],
    data: ['data/*.sql'],
    development: ['src/*.ts'],
    qa: ['tests/report.md'],
    documentation: ['README.md'],
  };
  return ProjectSpecSchema.parse({
    project: { name: 'engine test' },
    phases: PHASES.map((name) => ({
      name,
      agents: [
        {
          role: name === 'development' ? 'developer' : 'architect',
          backend: 'script',
          command: gates.script(name, work[name], gated.includes(name)),
        },
      ],
      artifacts: artifacts[name].map((pattern) => ({ pattern })),
    })),
  });
}

/** A planning script phase (one artifact), so model phases run on a checkpointed workspace. */
const PLAN_PHASE = {
  name: 'planning',
  agents: [{ role: 'architect', backend: 'script', command: ['sh', '-c', 'echo "# plan" > plan.md'] }],
  artifacts: [{ pattern: 'plan.md' }],
};

/** A run of a planning script phase, then `phases` (raw intake shapes), with a $10 budget unless told. */
export function modelSpec(
  name: string,
  phases: Record<string, unknown>[],
  constraints: Record<string, unknown> = {},
): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name },
    constraints: { budget_usd: 10, ...constraints },
    phases: [PLAN_PHASE, ...phases],
  });
}
