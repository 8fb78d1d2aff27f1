import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { APIConnectionError, APIError } from '@anthropic-ai/sdk';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ApiFailureType,
  classifyAnthropicError,
  createApiActivities,
  type ApiTurnInput,
  type ApiTurnResult,
} from '../../activities/api';
import { executeTool } from '../../activities/tools';
import { priceUsage } from '../../config/pricing';
import { startModelServer, type ModelServer } from '../../src/modelserver';

const logger = pino({ level: 'silent' });

/** A mock activity environment that does not print the failures these tests provoke on purpose. */
const mockEnv = (info: ConstructorParameters<typeof MockActivityEnvironment>[0] = {}) =>
  new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR', () => undefined) });

describe('classifyAnthropicError', () => {
  const apiError = (status: number, type: string, message: string, headers: Record<string, string> = {}) =>
    APIError.generate(status, { type: 'error', error: { type, message } }, undefined, new Headers(headers));

  it('429 is RateLimited, retryable after retry-after seconds', () => {
    const f = classifyAnthropicError(apiError(429, 'rate_limit_error', 'slow down', { 'retry-after': '3' }));
    expect(f).toMatchObject({ type: ApiFailureType.RateLimited, nonRetryable: false, nextRetryDelay: 3000 });
    expect(f.message).toContain('slow down');
  });

  it('5xx, 529 and connection errors are ApiUnavailable, retryable', () => {
    for (const [status, type] of [
      [500, 'api_error'],
      [503, 'api_error'],
      [529, 'overloaded_error'],
    ] as const) {
      expect(classifyAnthropicError(apiError(status, type, 'x'))).toMatchObject({
        type: ApiFailureType.ApiUnavailable,
        nonRetryable: false,
      });
    }
    expect(classifyAnthropicError(new APIConnectionError({ message: 'ECONNREFUSED' }))).toMatchObject({
      type: ApiFailureType.ApiUnavailable,
      nonRetryable: false,
    });
  });

  it('400 is InvalidRequest with the server message, 401/403 AuthenticationFailed, 404 UnknownModel; none retryable', () => {
    const bad = classifyAnthropicError(apiError(400, 'invalid_request_error', 'prompt is too long'));
    expect(bad).toMatchObject({ type: ApiFailureType.InvalidRequest, nonRetryable: true });
    expect(bad.message).toContain('prompt is too long');
    expect(classifyAnthropicError(apiError(401, 'authentication_error', 'x'))).toMatchObject({
      type: ApiFailureType.AuthenticationFailed,
      nonRetryable: true,
    });
    expect(classifyAnthropicError(apiError(403, 'permission_error', 'x'))).toMatchObject({
      type: ApiFailureType.AuthenticationFailed,
      nonRetryable: true,
    });
    expect(classifyAnthropicError(apiError(404, 'not_found_error', 'model: claude-x'))).toMatchObject({
      type: ApiFailureType.UnknownModel,
      nonRetryable: true,
    });
  });

  it('passes ApplicationFailures through and treats unknown errors as retryable', () => {
    const af = ApplicationFailure.nonRetryable('mine', 'Mine');
    expect(classifyAnthropicError(af)).toBe(af);
    expect(classifyAnthropicError(new Error('socket hang up'))).toMatchObject({
      type: ApiFailureType.ApiUnavailable,
      nonRetryable: false,
    });
  });
});

describe('apiTurn against the local model server', () => {
  let srv: ModelServer;
  let outputsDir: string;
  let workspace: string;
  let apiTurn: ReturnType<typeof createApiActivities>['apiTurn'];

  beforeAll(async () => {
    srv = await startModelServer({ serveModel: { 'claude-opus-4-8': 'claude-sonnet-4-6' } });
    outputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-outputs-'));
    ({ apiTurn } = createApiActivities({
      logger,
      anthropic: { apiKey: 'test', baseURL: srv.url },
      outputsDir,
    }));
  });
  afterAll(async () => {
    await srv.close();
  });
  beforeEach(() => {
    srv.requests.length = 0;
    workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'api-ws-'));
  });

  const input = (over: Partial<ApiTurnInput> = {}): ApiTurnInput => ({
    runId: 'run-1',
    agentId: 'dev',
    model: 'claude-opus-5-5',
    system: 'Role: developer',
    messages: [{ role: 'user', content: '@write out.txt hello\\nworld' }],
    tools: true,
    maxTokens: 4096,
    ...over,
  });

  it('runs a tool loop: tool_use turn, runTool, final turn; priced, heartbeated, transcribed', async () => {
    const env = mockEnv({ attempt: 1 });
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));

    const first: ApiTurnResult = await env.run(apiTurn, input({ agentId: 'loop' }));
    expect(first.stop_reason).toBe('tool_use');
    expect(first.tool_uses).toEqual([
      { id: expect.any(String), name: 'write_file', input: { path: 'out.txt', content: 'hello\nworld' } },
    ]);
    expect(first.model).toBe('claude-opus-5-5');
    expect(first.costUsd).toBe(priceUsage('claude-opus-5-5', first.usage));
    expect(first.costUsd).toBe(srv.requests[0]?.costUsd);
    expect(first.usage.output_tokens).toBe(srv.requests[0]?.usage?.output_tokens);
    expect(beats.length).toBeGreaterThan(0);
    // The request offered the workspace tools.
    expect(srv.requests[0]?.toolNames).toContain('run_command');

    const tu = first.tool_uses[0]!;
    const toolResult = await executeTool(tu.name, tu.input, { workspace });
    expect(fs.readFileSync(path.join(workspace, 'out.txt'), 'utf8')).toBe('hello\nworld');

    const second = await env.run(
      apiTurn,
      input({
        agentId: 'loop',
        messages: [
          ...input().messages,
          {
            role: 'assistant',
            content: [
              { type: 'text', text: first.text },
              { type: 'tool_use', id: tu.id, name: tu.name, input: tu.input },
            ],
          },
          {
            role: 'user',
            content: [{ type: 'tool_result', tool_use_id: tu.id, content: toolResult.output }],
          },
        ],
      }),
    );
    expect(second).toMatchObject({ stop_reason: 'end_turn', text: 'Done: wrote out.txt.', tool_uses: [] });

    const lines = fs
      .readFileSync(first.transcriptPath, 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { type: string; system?: string; messages?: unknown[]; message?: { id: string } },
      );
    expect(first.transcriptPath).toBe(path.join(outputsDir, 'run-1', 'agents', 'loop.jsonl'));
    expect(lines.map((l) => l.type)).toEqual(['request', 'response', 'request', 'response']);
    expect(lines[0]?.system).toBe('Role: developer');
    expect(lines[2]?.system).toBeUndefined();
    // Only what is new since the last assistant turn: the tool result.
    expect(lines[2]?.messages).toHaveLength(1);
    expect(lines[1]?.message?.id).toBe(first.messageId);
  });

  it('prices on the model the response names', async () => {
    const r: ApiTurnResult = await mockEnv().run(
      apiTurn,
      input({ model: 'claude-opus-4-8', tools: false, messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect(r.model).toBe('claude-sonnet-4-6');
    expect(r.costUsd).toBe(priceUsage('claude-sonnet-4-6', r.usage));
    expect(r.costUsd).toBeLessThan(priceUsage('claude-opus-4-8', r.usage));
  });

  async function failureOf(over: Partial<ApiTurnInput> = {}): Promise<ApplicationFailure> {
    const err = await mockEnv()
      .run(apiTurn, input(over))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }

  it('classifies server faults without retrying them itself', async () => {
    srv.injectFaults(
      { status: 429, retryAfterSeconds: 2 },
      { status: 529 },
      { status: 400, message: 'messages: roles must alternate' },
      { status: 401 },
    );
    expect(await failureOf()).toMatchObject({
      type: 'RateLimited',
      nonRetryable: false,
      nextRetryDelay: 2000,
    });
    expect(await failureOf()).toMatchObject({ type: 'ApiUnavailable', nonRetryable: false });
    const bad = await failureOf({ agentId: 'faulty' });
    expect(bad).toMatchObject({ type: 'InvalidRequest', nonRetryable: true });
    expect(bad.message).toContain('messages: roles must alternate');
    expect(await failureOf()).toMatchObject({ type: 'AuthenticationFailed', nonRetryable: true });
    expect(await failureOf({ model: 'claude-unknown-1' })).toMatchObject({
      type: 'UnknownModel',
      nonRetryable: true,
    });
    // maxRetries: 0 — exactly one HTTP request per activity attempt.
    expect(srv.requests).toHaveLength(5);
    const transcript = fs.readFileSync(path.join(outputsDir, 'run-1', 'agents', 'faulty.jsonl'), 'utf8');
    expect(transcript).toContain('"type":"error","failureType":"InvalidRequest"');
  });

  it('treats an unreachable server as ApiUnavailable', async () => {
    const closed = await startModelServer();
    const url = closed.url;
    await closed.close();
    const { apiTurn: offline } = createApiActivities({
      logger,
      anthropic: { apiKey: 'test', baseURL: url },
      outputsDir,
    });
    const err = await mockEnv()
      .run(offline, input())
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'ApiUnavailable', nonRetryable: false });
  });

  it('aborts the stream when the activity is cancelled', async () => {
    const env = mockEnv();
    const started = Date.now();
    const pending = env.run(
      apiTurn,
      input({ messages: [{ role: 'user', content: '@sleep 10000\n@say late' }] }),
    );
    setTimeout(() => env.cancel(), 300);
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(Date.now() - started).toBeLessThan(5000);
    // The server saw the client go away and served no usage for it.
    await expect.poll(() => srv.requests[0]?.status).toBe(499);
    expect(srv.totals()).toEqual({});
  });

  it('refuses ids that could escape the outputs directory', async () => {
    const err = await failureOf({ agentId: '../../etc' });
    expect(err).toMatchObject({ type: 'InvalidRequest', nonRetryable: true });
    expect(err.message).toMatch(/^agentId: /);
    expect(srv.requests).toHaveLength(0);
  });
});
