import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/env';
import { ConfigError } from '../../config/errors';

describe('loadConfig', () => {
  it('uses defaults for an empty environment', () => {
    const c = loadConfig({}, {}, '/tmp/x');
    expect(c.temporal).toEqual({
      address: '127.0.0.1:7233',
      namespace: 'default',
      taskQueue: 'orchestrator',
      addressSource: 'default',
    });
    expect(c.home).toBe('/tmp/x/.orchestrator');
    expect(c.outputsDir).toBe('/tmp/x/outputs');
  });

  it('names the variable in a one-line error', () => {
    expect(() => loadConfig({ TEMPORAL_ADDRESS: 'not-an-address' })).toThrow(ConfigError);
    expect(() => loadConfig({ TEMPORAL_ADDRESS: 'not-an-address' })).toThrow(
      /^TEMPORAL_ADDRESS: .*not-an-address/,
    );
    expect(() => loadConfig({ ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES: 'many' })).toThrow(
      /^ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES:/,
    );
  });

  it('serves metrics only when a port is set, on loopback unless an address is given', () => {
    expect(loadConfig({}).metrics).toBeUndefined();
    expect(loadConfig({ ORCHESTRATOR_METRICS_PORT: '9464' }).metrics).toEqual({
      bindAddress: '127.0.0.1:9464',
    });
    expect(
      loadConfig({ ORCHESTRATOR_METRICS_PORT: '9464', ORCHESTRATOR_METRICS_ADDRESS: '::' }).metrics,
    ).toEqual({ bindAddress: '[::]:9464' });
    expect(() => loadConfig({ ORCHESTRATOR_METRICS_PORT: '70000' })).toThrow(
      /^ORCHESTRATOR_METRICS_PORT: must be a port, 1-65535 \(got "70000"\)$/,
    );
    expect(() => loadConfig({ ORCHESTRATOR_METRICS_PORT: '1', ORCHESTRATOR_METRICS_ADDRESS: 'a b' })).toThrow(
      /^ORCHESTRATOR_METRICS_ADDRESS:/,
    );
  });

  it('never echoes a secret value in an error', () => {
    try {
      loadConfig({ ANTHROPIC_BASE_URL: 'nope', ANTHROPIC_API_KEY: 'sk-secret' });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/^ANTHROPIC_BASE_URL:/);
      expect((err as Error).message).not.toContain('sk-secret');
    }
  });

  it('lets flags override env', () => {
    const c = loadConfig({ TEMPORAL_ADDRESS: 'a:1' }, { address: 'b:2', taskQueue: 'q' });
    expect(c.temporal.address).toBe('b:2');
    expect(c.temporal.taskQueue).toBe('q');
  });
});
