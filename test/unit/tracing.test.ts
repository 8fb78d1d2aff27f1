/**
 * Tracing configuration and what a model-call span says (workers/tracing.ts), without a server; the
 * spans themselves reaching a collector are tested in test/workflow/traces.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/env';
import { modelCallAttributes } from '../../workers/tracing';

describe('tracing configuration', () => {
  it('is off unless an OTLP endpoint is set', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }).tracing).toBeUndefined();
  });

  it('sends to <endpoint>/v1/traces, or to the traces endpoint as given', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' }).tracing).toEqual({
      tracesUrl: 'http://127.0.0.1:4318/v1/traces',
      serviceName: 'orchestrator-worker',
    });
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:9999/traces',
        OTEL_SERVICE_NAME: 'w1',
      }).tracing,
    ).toEqual({ tracesUrl: 'http://collector:9999/traces', serviceName: 'w1' });
  });

  it('names the variable when the endpoint is not a URL', () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost 4318' })).toThrow(
      /^OTEL_EXPORTER_OTLP_ENDPOINT: must be a URL/,
    );
  });
});

describe('modelCallAttributes', () => {
  it('reads the api backend’s input and result', () => {
    const attrs = modelCallAttributes(
      'apiTurn',
      { runId: 'r1', agentId: 'development-developer', model: 'claude-sonnet-4-5' },
      { model: 'claude-sonnet-4-5-20250929', costUsd: 0.0123, usage: { input_tokens: 10, output_tokens: 5 } },
    );
    expect(attrs).toEqual({
      'orchestrator.model_call': true,
      'gen_ai.system': 'anthropic',
      'gen_ai.operation.name': 'chat',
      'orchestrator.run': 'r1',
      'orchestrator.agent': 'development-developer',
      'gen_ai.request.model': 'claude-sonnet-4-5',
      'gen_ai.response.model': 'claude-sonnet-4-5-20250929',
      'gen_ai.usage.input_tokens': 10,
      'gen_ai.usage.output_tokens': 5,
      'orchestrator.cost_usd': 0.0123,
    });
  });

  it('reads the cli backend’s turn totals, and leaves out what is missing or not a number', () => {
    const attrs = modelCallAttributes(
      'claudeTurn',
      { runId: 'r1', agentId: 'a' },
      { usage: { inputTokens: 7, outputTokens: Number.NaN }, costUsd: 'x' },
    );
    expect(attrs['gen_ai.operation.name']).toBe('claude_code_turn');
    expect(attrs['gen_ai.usage.input_tokens']).toBe(7);
    expect(attrs).not.toHaveProperty('gen_ai.usage.output_tokens');
    expect(attrs).not.toHaveProperty('orchestrator.cost_usd');
    expect(attrs).not.toHaveProperty('gen_ai.request.model');
    expect(modelCallAttributes('apiTurn', undefined, undefined)['orchestrator.run']).toBeUndefined();
  });
});
