import { describe, expect, it } from 'vitest';
import { capacityFor } from '../../config/capacity';
import { loadConfig } from '../../config/env';

const GiB = 1024 ** 3;

describe('capacity', () => {
  it('sizes agent turns by memory and short steps by cores, within bounds', () => {
    expect(capacityFor({ cores: 2, memoryBytes: 24 * GiB })).toEqual({
      agentTurns: 153,
      shortSteps: 20,
      cachedWorkflows: 64,
    });
    expect(capacityFor({ cores: 16, memoryBytes: 64 * GiB })).toEqual({
      agentTurns: 409,
      shortSteps: 160,
      cachedWorkflows: 256,
    });
    // A small box: the cache gets at most an eighth of memory (32 workflows of 1 MiB).
    expect(capacityFor({ cores: 1, memoryBytes: 256 * 1024 ** 2 })).toEqual({
      agentTurns: 4,
      shortSteps: 20,
      cachedWorkflows: 32,
    });
    expect(capacityFor({ cores: 64, memoryBytes: 1024 * GiB }).agentTurns).toBe(500);
  });

  it('is the default of the config, and each part can be set', () => {
    const machine = { cores: 2, memoryBytes: 24 * GiB };
    expect(loadConfig({}, {}, '/tmp/x', machine).worker).toMatchObject({
      maxConcurrentActivities: 20,
      maxConcurrentAgents: 153,
      maxCachedWorkflows: 64,
    });
    const set = loadConfig(
      {
        ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES: '7',
        ORCHESTRATOR_MAX_CONCURRENT_AGENTS: '400',
        ORCHESTRATOR_MAX_CACHED_WORKFLOWS: '30',
      },
      {},
      '/tmp/x',
      machine,
    );
    expect(set.worker).toMatchObject({
      maxConcurrentActivities: 7,
      maxConcurrentAgents: 400,
      maxCachedWorkflows: 30,
    });
    expect(() => loadConfig({ ORCHESTRATOR_MAX_CACHED_WORKFLOWS: '1' })).toThrow(
      /^ORCHESTRATOR_MAX_CACHED_WORKFLOWS: must be at least 2 \(got "1"\)$/,
    );
    expect(() => loadConfig({ ORCHESTRATOR_MAX_CONCURRENT_AGENTS: '0' })).toThrow(
      /^ORCHESTRATOR_MAX_CONCURRENT_AGENTS: must be positive \(got "0"\)$/,
    );
  });
});
