/**
 * Replays histories recorded from real runs (scripts/record-histories.ts) against the current workflow
 * code. A failure means a change would break runs already in flight: guard it with `patched()`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../workers/worker';

const DIR = path.resolve(import.meta.dirname, 'histories');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has recorded histories of a full run and of a run with a rollback', () => {
    expect(files).toEqual(expect.arrayContaining(['project-full.json', 'project-rollback.json']));
  });

  it('replays every recorded history without non-determinism', async () => {
    const histories = files.map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as unknown,
    }));
    const results: { workflowId: string; error?: unknown }[] = [];
    for await (const r of Worker.runReplayHistories(
      { workflowsPath: WORKFLOWS_PATH, replayName: 'recorded' },
      histories,
    )) {
      results.push(r);
    }
    expect(results.map((r) => r.workflowId).sort()).toEqual(histories.map((h) => h.workflowId).sort());
    for (const r of results) expect(r.error, `${r.workflowId}: ${String(r.error)}`).toBeUndefined();
  });
});
