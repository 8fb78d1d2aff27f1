import path from 'node:path';
import Anthropic, { APIError } from '@anthropic-ai/sdk';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { priceUsage } from '../../config/pricing';
import {
  estimateTokens,
  rehearsalBrain,
  startModelServer,
  type BrainRequest,
  type ModelServer,
} from '../../src/modelserver';

let srv: ModelServer;
let client: Anthropic;

beforeAll(async () => {
  srv = await startModelServer({ serveModel: { 'claude-opus-4-8': 'claude-sonnet-4-6' } });
  client = new Anthropic({ apiKey: 'test', baseURL: srv.url, maxRetries: 0 });
});
afterAll(async () => {
  await srv.close();
});
beforeEach(() => {
  srv.requests.length = 0;
});

const apiTools: Anthropic.Tool[] = ['read_file', 'write_file', 'run_command'].map((name) => ({
  name,
  description: name,
  input_schema: { type: 'object' },
}));

describe('model server over the real SDK', () => {
  it('answers non-streaming with deterministic usage derived from the request', async () => {
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'What is the plan?' }];
    const msg = await client.messages.create({ model: 'claude-opus-5-5', max_tokens: 1000, messages });
    expect(msg.type).toBe('message');
    expect(msg.model).toBe('claude-opus-5-5');
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.content[0]?.type).toBe('text');
    expect(msg.usage.input_tokens).toBe(estimateTokens(messages));
    expect(msg.usage.output_tokens).toBeGreaterThan(0);

    const [req] = srv.requests;
    expect(req).toMatchObject({ endpoint: 'messages', model: 'claude-opus-5-5', stream: false, status: 200 });
    expect(req?.lastUserText).toBe('What is the plan?');
    expect(srv.totals()['claude-opus-5-5']).toMatchObject({
      requests: 1,
      input_tokens: msg.usage.input_tokens,
      output_tokens: msg.usage.output_tokens,
      costUsd: priceUsage('claude-opus-5-5', msg.usage),
    });
  });

  it('streams a tool_use turn, then ends after the tool result (custom tools)', async () => {
    const messages: Anthropic.MessageParam[] = [
      { role: 'user', content: 'Please do this.\n@cost 42\n@write notes/a.md # Title\\nbody' },
    ];
    const stream = client.messages.stream({ model: 'sonnet', max_tokens: 4000, messages, tools: apiTools });
    const events: string[] = [];
    stream.on('streamEvent', (e) => events.push(e.type));
    const first = await stream.finalMessage();
    expect(events[0]).toBe('message_start');
    expect(events).toContain('content_block_delta');
    expect(events.at(-1)).toBe('message_stop');
    expect(first.model).toBe('claude-sonnet-5-5');
    expect(first.stop_reason).toBe('tool_use');
    const tu = first.content.find((b) => b.type === 'tool_use');
    expect(tu).toMatchObject({ name: 'write_file', input: { path: 'notes/a.md', content: '# Title\nbody' } });
    // message_delta's output_tokens override message_start's, as with the real API.
    expect(first.usage.output_tokens).toBe(42);

    const second = await client.messages
      .stream({
        model: 'sonnet',
        max_tokens: 4000,
        tools: apiTools,
        messages: [
          ...messages,
          { role: 'assistant', content: first.content },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: tu!.type === 'tool_use' ? tu!.id : '', content: 'ok' },
            ],
          },
        ],
      })
      .finalMessage();
    expect(second.stop_reason).toBe('end_turn');
    expect(second.content).toEqual([{ type: 'text', text: 'Done: wrote notes/a.md.' }]);
    expect(srv.requests.map((r) => r.stream)).toEqual([true, true]);
  });

  it('reads role:system entries mid-conversation and answers the last user message', async () => {
    const msg = await client.messages.create({
      model: 'claude-opus-5-5',
      max_tokens: 1000,
      messages: [
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'an answer' },
        { role: 'system', content: 'Role: reviewer' },
        { role: 'user', content: 'second question' },
      ],
    });
    expect(msg.content[0]).toMatchObject({
      type: 'text',
      text: expect.stringMatching(/^As reviewer: review ready/),
    });
    expect(srv.requests[0]?.lastUserText).toBe('second question');
  });

  it('serves another model when configured, and the response names it', async () => {
    const msg = await client.messages.create({
      model: 'claude-opus-4-8',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(msg.model).toBe('claude-sonnet-4-6');
    expect(srv.requests[0]).toMatchObject({ model: 'claude-opus-4-8', responseModel: 'claude-sonnet-4-6' });
  });

  it('truncates at a tiny max_tokens (the CLI quota probe)', async () => {
    const msg = await client.messages.create({
      model: 'haiku',
      max_tokens: 1,
      messages: [{ role: 'user', content: 'quota' }],
    });
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.usage.output_tokens).toBe(1);
  });

  it('simulates prompt caching for requests with cache_control', async () => {
    const req = {
      model: 'claude-opus-5-5',
      max_tokens: 100,
      system: [
        {
          type: 'text' as const,
          text: 'A long system prompt '.repeat(50),
          cache_control: { type: 'ephemeral' as const },
        },
      ],
      messages: [{ role: 'user' as const, content: 'hi' }],
    };
    const a = await client.messages.create(req);
    const b = await client.messages.create(req);
    expect(a.usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(a.usage.cache_creation?.ephemeral_5m_input_tokens).toBe(a.usage.cache_creation_input_tokens);
    expect(a.usage.cache_read_input_tokens).toBe(0);
    expect(b.usage.cache_read_input_tokens).toBe(a.usage.cache_creation_input_tokens);
    expect(b.usage.cache_creation_input_tokens).toBe(0);
  });

  it('counts tokens', async () => {
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'count me' }];
    const r = await client.messages.countTokens({ model: 'claude-opus-5-5', messages });
    expect(r.input_tokens).toBe(estimateTokens(messages));
    expect(srv.requests[0]?.endpoint).toBe('count_tokens');
  });
});

describe('model server errors', () => {
  const ask = (c = client) =>
    c.messages.create({
      model: 'claude-opus-5-5',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });

  it('answers injected faults in order, with the API error body', async () => {
    srv.injectFaults({ status: 500 }, { status: 400, message: 'prompt is too long' });
    const e1 = await ask().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(Anthropic.InternalServerError);
    expect((e1 as APIError).type).toBe('api_error');
    const e2 = await ask().catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(Anthropic.BadRequestError);
    expect((e2 as APIError).apiMessage).toBe('prompt is too long');
    expect((e2 as APIError).type).toBe('invalid_request_error');
    await expect(ask()).resolves.toMatchObject({ type: 'message' });
    expect(srv.requests.map((r) => r.status)).toEqual([500, 400, 200]);
    // Failed requests served no usage.
    expect(srv.totals()['claude-opus-5-5']?.requests).toBe(1);
  });

  it('sends retry-after with 429, which the SDK honours when it retries', async () => {
    srv.injectFaults({ status: 429, retryAfterSeconds: 7 });
    const e = await ask().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(Anthropic.RateLimitError);
    expect((e as APIError).headers?.get('retry-after')).toBe('7');
    expect((e as APIError).type).toBe('rate_limit_error');

    srv.injectFaults({ status: 529 }, { status: 429, retryAfterSeconds: 0 });
    const retrying = new Anthropic({ apiKey: 'test', baseURL: srv.url, maxRetries: 2 });
    await expect(ask(retrying)).resolves.toMatchObject({ type: 'message' });
    expect(srv.requests.slice(1).map((r) => [r.status, r.error])).toEqual([
      [529, 'overloaded_error'],
      [429, 'rate_limit_error'],
      [200, undefined],
    ]);
  });

  it('answers 404 for a model it cannot price, and 400 for a malformed body', async () => {
    const e = await client.messages
      .create({ model: 'claude-9000', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] })
      .catch((err: unknown) => err);
    expect(e).toBeInstanceOf(Anthropic.NotFoundError);
    expect((e as APIError).apiMessage).toBe('model: claude-9000');

    const res = await fetch(`${srv.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'opus', messages: [] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe('error');
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toMatch(/messages|max_tokens/);
  });

  it('@fail fails the next step on its first attempts only, so a retry gets through', async () => {
    const req = {
      model: 'claude-opus-5-5',
      max_tokens: 100,
      messages: [{ role: 'user' as const, content: '@fail 503 1\n@say finished' }],
    };
    await expect(client.messages.create(req)).rejects.toBeInstanceOf(Anthropic.ServiceUnavailableError);
    const ok = await client.messages.create(req);
    expect(ok.content).toEqual([{ type: 'text', text: 'finished' }]);
  });

  it('can fail mid-stream with an SSE error event', async () => {
    srv.injectFaults({ status: 529, midStream: true });
    const stream = client.messages.stream({
      model: 'claude-opus-5-5',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    const e = await stream.finalMessage().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(APIError);
    expect((e as APIError).status).toBeUndefined();
    expect((e as APIError).type).toBe('overloaded_error');
  });

  it('lets a custom script brain decide, with the attempt number', async () => {
    const seen: BrainRequest[] = [];
    const custom = await startModelServer({
      script: (req) => {
        seen.push(req);
        return req.attempt === 1
          ? { type: 'error', fault: { status: 500, message: 'first try fails' } }
          : rehearsalBrain(req);
      },
    });
    try {
      const c = new Anthropic({ apiKey: 'test', baseURL: custom.url, maxRetries: 1 });
      const msg = await c.messages.create({
        model: 'opus',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'x' }],
      });
      expect(msg.type).toBe('message');
      expect(seen.map((r) => r.attempt)).toEqual([1, 2]);
      expect(custom.requests.map((r) => r.status)).toEqual([500, 200]);
    } finally {
      await custom.close();
    }
  });
});

describe('rehearsal brain', () => {
  const base: BrainRequest = {
    model: 'claude-opus-5-5',
    system: '',
    messages: [],
    toolNames: [],
    maxTokens: 1000,
    attempt: 1,
  };

  it('writes a role-appropriate file with Write (absolute path from the announced cwd), then summarises', async () => {
    const messages: BrainRequest['messages'] = [
      {
        role: 'user',
        content: [
          { type: 'text', text: '<system-reminder>\nAttribution…\n</system-reminder>' },
          { type: 'text', text: 'Design the todo app' },
        ],
      },
      {
        role: 'system',
        content: [{ type: 'text', text: '# Environment\n - Primary working directory: /work/ws1\n' }],
      },
    ];
    const req = {
      ...base,
      system: 'You are Claude Code.\n\nRole: architect',
      messages,
      toolNames: ['Bash', 'Write'],
    };
    const r1 = await rehearsalBrain(req);
    expect(r1.type).toBe('message');
    const tu = r1.type === 'message' ? r1.content.find((b) => b.type === 'tool_use') : undefined;
    expect(tu).toMatchObject({ name: 'Write', input: { file_path: '/work/ws1/plan.md' } });
    expect(tu?.type === 'tool_use' && String(tu.input.content)).toContain('Task: Design the todo app');

    const after = await rehearsalBrain({
      ...req,
      messages: [
        ...messages,
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'ok' }] },
      ],
    });
    expect(after).toMatchObject({
      type: 'message',
      content: [{ type: 'text', text: expect.stringContaining('architect') }],
    });
  });

  it('a team agent without directives writes its document, marks its work done once, then answers', async () => {
    const toolNames = ['Bash', 'Write', 'mcp__team__complete_task'];
    const first: BrainRequest['messages'] = [{ role: 'user', content: 'Lead the team.\n\n- Write a plan' }];
    const r1 = await rehearsalBrain({ ...base, system: 'Role: manager', messages: first, toolNames });
    expect(r1.type === 'message' && r1.content[1]).toMatchObject({ type: 'tool_use', name: 'Write' });
    const wrote: BrainRequest['messages'] = [
      ...first,
      { role: 'assistant', content: r1.type === 'message' ? r1.content : [] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] },
    ];
    const r2 = await rehearsalBrain({ ...base, system: 'Role: manager', messages: wrote, toolNames });
    expect(r2.type === 'message' && r2.content[1]).toEqual({
      type: 'tool_use',
      name: 'mcp__team__complete_task',
      input: { task: 'all' },
    });
    const r3 = await rehearsalBrain({
      ...base,
      system: 'Role: manager',
      messages: [
        ...wrote,
        { role: 'assistant', content: r2.type === 'message' ? r2.content : [] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't2', content: 'done' }] },
      ],
      toolNames,
    });
    expect(r3.type === 'message' && r3.content.map((b) => b.type)).toEqual(['text']);
  });

  it('maps @bash to Bash for the CLI and to run_command for the api tools; skips what it cannot run', async () => {
    const messages: BrainRequest['messages'] = [
      { role: 'user', content: '@bash echo hi > x\n@write y.txt y' },
    ];
    const cli = await rehearsalBrain({ ...base, messages, toolNames: ['Bash', 'Write'] });
    expect(cli.type === 'message' && cli.content[1]).toMatchObject({
      name: 'Bash',
      input: { command: 'echo hi > x' },
    });
    const api = await rehearsalBrain({ ...base, messages, toolNames: ['run_command', 'write_file'] });
    expect(api.type === 'message' && api.content[1]).toMatchObject({
      name: 'run_command',
      input: { argv: ['sh', '-c', 'echo hi > x'] },
    });
    const writeOnly = await rehearsalBrain({ ...base, messages, toolNames: ['write_file'] });
    expect(writeOnly.type === 'message' && writeOnly.content[1]).toMatchObject({ name: 'write_file' });
    const noTools = await rehearsalBrain({ ...base, messages });
    expect(noTools).toMatchObject({ type: 'message', content: [{ type: 'text' }] });
  });
});

describe('modelserver main', () => {
  it('prints its URL, serves, and exits cleanly on SIGTERM', async () => {
    const root = path.resolve(import.meta.dirname, '../..');
    // Node with tsx's loader, not the `tsx` command: that relays SIGTERM to its child and kills it with
    // SIGKILL (exit 143) when the child does not answer within 30 ms, as happens on a loaded machine.
    const child = execa(
      process.execPath,
      ['--import', 'tsx', 'src/modelserver/main.ts', '--port', '0', '--log-level', 'silent'],
      {
        cwd: root,
        reject: false,
      },
    );
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
      child.once('exit', () => reject(new Error('exited before printing its URL')));
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const c = new Anthropic({ apiKey: 'test', baseURL: url, maxRetries: 0 });
    await expect(
      c.messages.countTokens({ model: 'opus', messages: [{ role: 'user', content: 'x' }] }),
    ).resolves.toEqual({
      input_tokens: expect.any(Number),
    });
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);
  });
});

describe('namedOutputs (the rehearsal brain writes what a task names)', () => {
  it("finds each preset phase's artifacts in its agent prompt", async () => {
    const { namedOutputs } = await import('../../src/modelserver/brain');
    const { getPhasePreset } = await import('../../config/phases');
    const expected: Record<string, string[]> = {
      planning: ['plan.md'],
      architecture: ['ARCHITECTURE.md'],
      data: ['data/schema.sql', 'data/README.md'],
      development: ['src/IMPLEMENTATION.md'],
      qa: ['tests/report.md'],
      documentation: ['README.md'],
    };
    for (const [phase, files] of Object.entries(expected)) {
      const prompt = getPhasePreset(phase)?.agents?.[0]?.prompt ?? '';
      expect(namedOutputs(prompt), phase).toEqual(files);
    }
  });

  it('ignores files only read, absolute paths and escapes', async () => {
    const { namedOutputs } = await import('../../src/modelserver/brain');
    expect(namedOutputs('Read plan.md and notes.txt first.')).toEqual([]);
    expect(namedOutputs('Write /etc/x.md and ../up.md and ok/fine.md.')).toEqual(['ok/fine.md']);
  });
});
