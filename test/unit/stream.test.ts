/**
 * The stream-json parser, on lines the real CLI printed (test/unit/stream-fixtures/, captured from
 * claude 2.1.330 against the local model server) and on hand-made oddities.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createStreamState,
  feedLine,
  ResultLineSchema,
  sumModelUsage,
  type StreamEvent,
} from '../../src/claude/stream';

const FIXTURES = path.join(import.meta.dirname, 'stream-fixtures');
const fixture = (name: string): string[] => fs.readFileSync(path.join(FIXTURES, name), 'utf8').split('\n');

function feedAll(lines: string[]) {
  const state = createStreamState();
  const events: StreamEvent[] = lines.map((l) => feedLine(state, l));
  return { state, events };
}

describe('feedLine on real CLI output', () => {
  it('tracks session, model, turns, last tool and the result of a Write turn', () => {
    const { state, events } = feedAll(fixture('write-turn.jsonl'));
    expect(state.sessionId).toBe('0f5e3a52-7c1d-4e38-9a4b-2d6f1c9e8b70');
    expect(state.model).toBe('claude-opus-5-5');
    // Two assistant messages; the first is split over two lines (text, then tool_use) with one id.
    expect(state.turns).toBe(2);
    expect(state.turns).toBe(state.lastResult?.num_turns);
    expect(state.lastTool).toBe('Write');
    expect(state.malformed).toBe(0);
    expect(
      events.filter((e) => e.kind === 'assistant').flatMap((e) => (e.kind === 'assistant' ? e.toolUses : [])),
    ).toEqual(['Write']);
    const r = state.lastResult!;
    expect(r.subtype).toBe('success');
    expect(r.is_error).toBe(false);
    expect(r.result).toBe('Done: wrote hello.txt.');
    expect(r.total_cost_usd).toBeCloseTo(0.0716404, 9);
    expect(sumModelUsage(r.modelUsage)).toEqual({
      inputTokens: 5211,
      outputTokens: 29,
      cacheRead: 9657,
      cacheCreation: 9657,
    });
  });

  it('keeps the LAST result when a stream has several', () => {
    // A transcript file holds every run of a session: two results, cumulative totals in the second.
    const { state } = feedAll([...fixture('write-turn.jsonl'), ...fixture('resume-turn.jsonl')]);
    expect(state.resultCount).toBe(2);
    expect(state.lastResult?.total_cost_usd).toBeCloseTo(0.0844798, 9);
    expect(sumModelUsage(state.lastResult?.modelUsage).inputTokens).toBe(7908);
  });

  it('reads an API error result (subtype success, is_error true, api_error_status)', () => {
    const { state } = feedAll(fixture('api-500.jsonl'));
    expect(state.lastResult).toMatchObject({
      subtype: 'success',
      is_error: true,
      api_error_status: 500,
      total_cost_usd: 0,
    });
  });

  it('reads a max-turns result with its errors', () => {
    const { state } = feedAll(fixture('max-turns.jsonl'));
    expect(state.lastResult?.subtype).toBe('error_max_turns');
    expect(state.lastResult?.errors).toEqual(['Reached maximum number of turns (1)']);
    expect(state.lastTool).toBe('Bash');
  });
});

describe('feedLine tolerance', () => {
  it('reports malformed lines without throwing and carries on', () => {
    const state = createStreamState();
    expect(feedLine(state, '{"type":"system","subtype":"init","session_id":"s1"')).toMatchObject({
      kind: 'malformed',
    });
    expect(feedLine(state, 'Warning: something on stdout')).toMatchObject({
      kind: 'malformed',
      error: /not JSON/,
    });
    expect(feedLine(state, '[1,2]')).toEqual({ kind: 'malformed', error: 'not a JSON object' });
    expect(feedLine(state, '{"no":"type"}')).toEqual({ kind: 'malformed', error: 'missing "type"' });
    expect(feedLine(state, '{"type":"result","subtype":42}')).toMatchObject({
      kind: 'malformed',
      error: /result line: subtype/,
    });
    expect(state.malformed).toBe(5);
    expect(state.lastResult).toBeUndefined();
    expect(
      feedLine(state, '{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.5}'),
    ).toMatchObject({
      kind: 'result',
    });
    expect(state.lastResult?.total_cost_usd).toBe(0.5);
  });

  it('ignores unknown types and fields, and blank lines', () => {
    const state = createStreamState();
    expect(feedLine(state, '')).toEqual({ kind: 'blank' });
    expect(feedLine(state, '   ')).toEqual({ kind: 'blank' });
    expect(feedLine(state, '{"type":"stream_event","event":{"type":"ping"}}')).toEqual({
      kind: 'other',
      type: 'stream_event',
    });
    expect(feedLine(state, '{"type":"system","subtype":"task_started","task_id":"x"}')).toEqual({
      kind: 'other',
      type: 'system',
      subtype: 'task_started',
    });
    const init = feedLine(
      state,
      '{"type":"system","subtype":"init","session_id":"s1","model":"m1","brand_new":{"a":1}}',
    );
    expect(init).toEqual({ kind: 'init', sessionId: 's1', model: 'm1' });
    const r = feedLine(
      state,
      '{"type":"result","subtype":"success","is_error":false,"future_field":[1],"modelUsage":{"m1":{"inputTokens":3,"costUSD":1,"newCounter":9}}}',
    );
    expect(r.kind).toBe('result');
    // Loose schema: unknown fields pass through; missing counters default to 0.
    expect(state.lastResult).toMatchObject({ future_field: [1] });
    expect(state.lastResult?.modelUsage?.m1).toMatchObject({
      inputTokens: 3,
      outputTokens: 0,
      newCounter: 9,
    });
    expect(state.malformed).toBe(0);
  });

  it('counts subagent messages as progress but not as main-loop turns', () => {
    const state = createStreamState();
    feedLine(
      state,
      '{"type":"assistant","message":{"id":"a","content":[{"type":"tool_use","name":"Task"}]}}',
    );
    const sub = feedLine(
      state,
      '{"type":"assistant","parent_tool_use_id":"t1","message":{"id":"b","content":[{"type":"tool_use","name":"Grep"}]}}',
    );
    expect(sub).toMatchObject({ kind: 'assistant', subagent: true, toolUses: ['Grep'] });
    expect(state.turns).toBe(1);
    expect(state.lastTool).toBe('Grep');
  });

  it('counts a new turn after a tool result even if a server reuses message ids', () => {
    const state = createStreamState();
    feedLine(
      state,
      '{"type":"assistant","message":{"id":"same","content":[{"type":"tool_use","name":"Bash"}]}}',
    );
    feedLine(state, '{"type":"user","message":{"role":"user","content":[{"type":"tool_result"}]}}');
    feedLine(state, '{"type":"assistant","message":{"id":"same","content":[{"type":"text","text":"ok"}]}}');
    expect(state.turns).toBe(2);
  });
});

describe('ResultLineSchema', () => {
  it('accepts a real result line and keeps its extra fields', () => {
    const line = fixture('write-turn.jsonl').filter(Boolean).at(-1)!;
    const parsed = ResultLineSchema.parse(JSON.parse(line));
    expect(parsed.session_id).toBe('0f5e3a52-7c1d-4e38-9a4b-2d6f1c9e8b70');
    expect(parsed).toHaveProperty('terminal_reason', 'completed');
    expect(parsed).toHaveProperty('subagent_stats');
  });
});
