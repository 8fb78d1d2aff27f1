/**
 * Replays histories recorded from real runs (scripts/record-histories.ts) against the current workflow
 * code, without a server. A failure means a change would break runs already in flight: guard it with
 * `patched()`.
 *
 * The archive only grows: test/replay/histories/<date>/<name>.json, one folder per recording, never
 * overwritten or deleted. archive.json holds each file's SHA-1, so an overwritten history fails here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger';
import { loadWorkflowBundle } from '../../workers/bundle';
import { installRuntimeLogger } from '../../workers/runtime-logger';

/**
 * Through the test runner's console, which shows a passing test's lines only when it fails (vitest
 * `silent: 'passed-only'`): a logger's default destination writes to stdout past it.
 */
const toConsole = { write: (line: string) => console.error(line.trimEnd()) };
const logger = (level: string) => createLogger(level, {}, toConsole);

// The SDK's own lines (worker state changes, the edited history's expected nondeterminism, the replay
// worker's missing sinks) stay quiet.
installRuntimeLogger(logger('error'));

const DIR = path.resolve(import.meta.dirname, 'histories');
const ARCHIVE = path.resolve(import.meta.dirname, 'archive.json');
const EDITED = path.resolve(import.meta.dirname, 'nondeterministic');

/** Every archived history, named `<folder>/<file>` without `.json`. */
function historyFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .sort();
}

const sha1 = (file: string): string => crypto.createHash('sha1').update(fs.readFileSync(file)).digest('hex');

async function replay(dir: string, files: string[]): Promise<Map<string, ReplayOutcome>> {
  const { codePath } = await loadWorkflowBundle(logger('warn'));
  const histories = files.map((f) => ({
    workflowId: f.replace(/\.json$/, ''),
    history: JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as unknown,
  }));
  const out = new Map<string, ReplayOutcome>();
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: { codePath }, replayName: 'archive' },
    histories,
  )) {
    out.set(r.workflowId, { error: r.error });
  }
  return out;
}

interface ReplayOutcome {
  error?: Error;
}

const WORKFLOWS = path.resolve(import.meta.dirname, '../../workflows');

/**
 * patched() ids no workflow can reach yet, each with the module whose import would make it reachable
 * (e.g. `{ 'some-id': 'visibility' }` while no workflow imports workflows/visibility.ts). None today.
 */
const UNREACHABLE: Record<string, string> = {};

/** Every `patched()` id in workflows/: literal arguments and the `*_PATCH` constants they use. */
function patchIdsInCode(): Set<string> {
  const ids = new Set<string>();
  for (const f of fs.readdirSync(WORKFLOWS, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ts')) continue;
    const text = fs.readFileSync(path.join(WORKFLOWS, f), 'utf8');
    for (const m of text.matchAll(/(?:patched\(\s*|_PATCH\s*=\s*)'([^']+)'/g)) ids.add(m[1]!);
  }
  return ids;
}

/** The ids of the patch markers a history recorded (`patch-data` is `{"id":…,"deprecated":…}`). */
function patchIdsIn(file: string): string[] {
  const h = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    events: { markerRecordedEventAttributes?: { markerName?: string; details?: Record<string, unknown> } }[];
  };
  const ids: string[] = [];
  for (const e of h.events) {
    const m = e.markerRecordedEventAttributes;
    if (m?.markerName !== 'core_patch') continue;
    const data = (m.details?.['patch-data'] as { payloads?: { data?: string }[] } | undefined)?.payloads?.[0]
      ?.data;
    if (data) ids.push((JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as { id: string }).id);
  }
  return ids;
}

describe('replay archive', () => {
  const files = historyFiles(DIR);

  it('keeps every recording folder: the pre-budget set restored from git and the budget set', () => {
    for (const set of ['2026-11-21-pre-budget', '2026-11-21-budgets']) {
      for (const name of ['project-full', 'project-rollback', 'agent-script'])
        expect(files).toContain(`${set}/${name}.json`);
    }
  });

  it('only grows: every archived file is unchanged, and every file is archived', () => {
    const archive = JSON.parse(fs.readFileSync(ARCHIVE, 'utf8')) as Record<string, string>;
    for (const [f, hash] of Object.entries(archive)) {
      expect(fs.existsSync(path.join(DIR, f)), `${f} was deleted`).toBe(true);
      expect(sha1(path.join(DIR, f)), `${f} was overwritten`).toBe(hash);
    }
    expect(
      files.filter((f) => !(f in archive)),
      'add new histories to archive.json',
    ).toEqual([]);
  });

  it('holds, for every patched() id in workflows/, a history that took its new branch', () => {
    const recorded = new Set(files.flatMap((f) => patchIdsIn(path.join(DIR, f))));
    const missing = [...patchIdsInCode()].filter((id) => !recorded.has(id) && !(id in UNREACHABLE)).sort();
    expect(missing, 'record a history for each (scripts/record-histories.ts)').toEqual([]);
    // An id excused as unreachable stays excused only while no workflow module imports its module.
    for (const [id, module] of Object.entries(UNREACHABLE)) {
      const importers = fs
        .readdirSync(WORKFLOWS, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .filter((f) =>
          new RegExp(`from '(\\.\\.?/)+${module}'`).test(fs.readFileSync(path.join(WORKFLOWS, f), 'utf8')),
        );
      expect(importers, `${id}: ${module}.ts is used now: record a history that takes it`).toEqual([]);
    }
  });

  it('replays every archived history without non-determinism', async () => {
    const results = await replay(DIR, files);
    expect([...results.keys()].sort()).toEqual(files.map((f) => f.replace(/\.json$/, '')).sort());
    for (const [id, r] of results) expect(r.error, `${id}: ${String(r.error)}`).toBeUndefined();
    // The archive only grows (40 s in a loaded suite run now): more than the 60 s default will be needed.
  }, 300_000);

  describe('a deliberately edited history', () => {
    let results: Map<string, ReplayOutcome>;
    beforeAll(async () => {
      results = await replay(EDITED, historyFiles(EDITED));
    });

    it('fails with a determinism error naming what no longer matches', () => {
      // A full run whose first checkpointPhase was renamed in the history: the code schedules
      // checkpointPhase where the history says checkpointPhaseRenamed.
      const r = results.get('checkpoint-activity-renamed');
      expect(r?.error).toBeInstanceOf(DeterminismViolationError);
      expect(String(r?.error)).toMatch(/checkpointPhaseRenamed/);
    });

    it('a real team history the sdk-core legacy-query path wrote (not edited) fails the same way', () => {
      // Recorded from the team-budget worker-kill case before workflows/interceptors.ts: the task after
      // the crash holds the early timer's appendAudit (event 69) before the raiseBudget acceptance (70).
      const r = results.get('team-update-after-early-timer');
      expect(r?.error).toBeInstanceOf(DeterminismViolationError);
      expect(String(r?.error)).toMatch(
        /Update machine does not handle this event: .*id: 69, ActivityTaskScheduled/,
      );
    });
  });
});
