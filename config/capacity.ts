/**
 * How much work one worker process takes on at once, sized from the machine it runs on. Agent turns
 * (a `claude` process of ~150 MiB, a script, a model call) and short orchestration steps (snapshot,
 * checkpoint, gate, audit, visibility) get separate room, so that no short step waits behind agent
 * turns: agents are bounded by memory, short steps by cores (they run git and gate commands).
 */
import os from 'node:os';

/** What the sizing looks at. */
export interface Machine {
  cores: number;
  /** Memory this process may use: the cgroup limit when there is one, else the machine's. */
  memoryBytes: number;
}

/** Room for agent turns and short steps, and how many workflows the worker keeps in its cache. */
export interface Capacity {
  /** Concurrent activities on `<queue>-agents`: agent turns and their tool calls. */
  agentTurns: number;
  /** Concurrent activities on `<queue>`: every short step of a run or team. */
  shortSteps: number;
  /**
   * Workflow executions kept in the worker's cache (the SDK's `maxCachedWorkflows`). The SDK's default
   * is sized from the V8 heap limit (about 2,300 here), so every run's workflows stay resident: ~3.8 MiB
   * per run when measured (issue #16). A run waiting on a long agent turn needs no cache entry; when it wakes, an evicted one is
   * replayed from its (short, continue-as-new bounded) history. So the cache is sized for the workflows
   * that are busy at once, which the cores bound, and never takes more than a slice of memory.
   */
  cachedWorkflows: number;
}

const MiB = 1024 * 1024;
/** What one real `claude` agent process holds (measured 145–166 MiB). */
export const AGENT_MEMORY_BYTES = 160 * MiB;
/** Fewer would make a small box run agents one by one; more than this and the model API is the limit. */
const MIN_AGENT_TURNS = 4;
const MAX_AGENT_TURNS = 500;
/** Short steps are mostly git and gate commands: a few per core keep the cores busy. */
const SHORT_STEPS_PER_CORE = 10;
const MIN_SHORT_STEPS = 20;
/**
 * Workflows busy at once per core (a workflow task takes a few ms of one core's time). Fewer than held
 * runs on purpose: with 200 runs of one worker (2 cores, bench:fleet at 4 runs a second) a cache of 96
 * peaked at 650–690 MiB when all 200 ended at once (evicting and replaying while most stayed cached), 64 at
 * 544, 48 at 497, 32 at 413–430 MiB, and all 200 cached (300) at 470 with 453 held; agent start p50 and
 * failures were the same within the machine's noise. A replay of a run's short, continue-as-new bounded
 * history costs less than keeping every run resident. At least 64: with 32, the fleet test's 50 runs
 * starting together were evicted and replayed as they started, and their turns were scheduled over 3.3 s
 * instead of within 3 s (test/quiet/fleet.test.ts).
 */
const CACHED_WORKFLOWS_PER_CORE = 16;
const MIN_CACHED_WORKFLOWS = 64;
/**
 * What a cached workflow execution holds in the worker, with its share of the SDK's state (measured: the
 * bundle's modules instantiated for each workflow were 1,473 KiB, 741 KiB since zod is shared by every
 * workflow of the thread (workflows/preload.ts); plus the run's own state).
 */
export const CACHED_WORKFLOW_BYTES = 1 * MiB;
/** The most of memory the workflow cache may take. */
const CACHE_MEMORY_SHARE = 1 / 8;

/** The default capacity of a worker on `machine` (pure: the decision, without reading the machine). */
export function capacityFor(machine: Machine): Capacity {
  const agents = Math.floor(machine.memoryBytes / AGENT_MEMORY_BYTES);
  return {
    agentTurns: Math.min(MAX_AGENT_TURNS, Math.max(MIN_AGENT_TURNS, agents)),
    shortSteps: Math.max(MIN_SHORT_STEPS, SHORT_STEPS_PER_CORE * Math.max(1, machine.cores)),
    cachedWorkflows: Math.min(
      Math.max(MIN_CACHED_WORKFLOWS, CACHED_WORKFLOWS_PER_CORE * Math.max(1, machine.cores)),
      // The SDK wants at least 2 (0 would disable the cache: a replay per workflow task).
      Math.max(2, Math.floor((machine.memoryBytes * CACHE_MEMORY_SHARE) / CACHED_WORKFLOW_BYTES)),
    ),
  };
}

/** This machine, as {@link capacityFor} sees it. */
export function thisMachine(): Machine {
  const total = os.totalmem();
  // A container's memory limit (cgroup) is what counts; Node reports 0 or a huge number without one.
  const limit = process.constrainedMemory?.() ?? 0;
  return {
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryBytes: limit > 0 && limit < total ? limit : total,
  };
}
