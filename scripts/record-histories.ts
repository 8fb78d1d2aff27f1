/**
 * Records workflow histories into the replay archive, a new folder each time (the archive only grows):
 *
 *   npx tsx scripts/record-histories.ts [--as <folder>] [test files…]
 *
 * Runs the given workflow/scenario test files (default: those that exercise every workflow type and
 * every patched() path) on a real dev server with ORCH_RECORD_HISTORIES set, so each test env saves
 * the histories of its closed executions (test/harness/record.ts). Of those, it keeps a small set that
 * covers every distinct step the runs took (activity, child workflow, timer, signal, update, patch
 * marker by id, outcome, and each pair of consecutive steps, per workflow type) and that no earlier
 * folder of the archive shows, names each file by what it shows, writes them to
 * test/replay/histories/<folder>/ with a README listing them, and adds their SHA-1s to
 * test/replay/archive.json. It refuses to write into an existing folder.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const HISTORIES = path.join(ROOT, 'test/replay/histories');
const ARCHIVE = path.join(ROOT, 'test/replay/archive.json');
const DEFAULT_TESTS = [
  'test/workflow/project.test.ts', // full run, rollback, fork, continue-as-new, agent children
  'test/workflow/budget.test.ts', // budget pause + raise, continue-as-new with a ledger
  'test/workflow/governance.test.ts', // gates: approve, retry_phase, rollback
  'test/workflow/team.test.ts', // teamWorkflow and teamAgentWorkflow
  'test/scenario/agents.test.ts', // cli and api agents against the local model server
];

interface Args {
  folder: string;
  tests: string[];
}

function parseArgs(argv: string[]): Args {
  let folder = new Date().toISOString().slice(0, 10);
  const tests: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--as') folder = argv[++i] ?? folder;
    else tests.push(a);
  }
  return { folder, tests: tests.length ? tests : DEFAULT_TESTS };
}

type Json = Record<string, unknown>;

interface Recorded {
  source: string;
  json: string;
  type: string;
  status: string;
  steps: string[];
  features: Set<string>;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const attrs = (e: Json, key: string): Json => (e[key] ?? {}) as Json;
const nameOf = (v: unknown): string => str((v as Json | undefined)?.name);

/**
 * The `patched()` id a core_patch marker records: its `patch-data` detail is the JSON
 * `{"id":…,"deprecated":…}` (what sdk-core 1.24 writes); `patch_id` is the older plain form.
 */
function patchId(marker: Json): string {
  const details = (marker.details ?? {}) as Record<string, { payloads?: { data?: string }[] } | undefined>;
  const decode = (d: string | undefined) => (d ? Buffer.from(d, 'base64').toString('utf8') : '');
  const data = decode(details['patch-data']?.payloads?.[0]?.data);
  if (data) {
    try {
      return str((JSON.parse(data) as Json).id);
    } catch {
      return '';
    }
  }
  return decode(details.patch_id?.payloads?.[0]?.data).replace(/"/g, '');
}

/** One step per command or input that shapes replay; undefined for bookkeeping events. */
function step(e: Json): string | undefined {
  const t = str(e.eventType).replace(/^EVENT_TYPE_/, '');
  switch (t) {
    case 'ACTIVITY_TASK_SCHEDULED':
      return `activity:${nameOf(attrs(e, 'activityTaskScheduledEventAttributes').activityType)}`;
    case 'START_CHILD_WORKFLOW_EXECUTION_INITIATED':
      return `child:${nameOf(attrs(e, 'startChildWorkflowExecutionInitiatedEventAttributes').workflowType)}`;
    case 'TIMER_STARTED':
      return 'timer';
    case 'MARKER_RECORDED': {
      const a = attrs(e, 'markerRecordedEventAttributes');
      const patch = patchId(a);
      return `marker:${str(a.markerName)}${patch ? `:${patch}` : ''}`;
    }
    case 'WORKFLOW_EXECUTION_SIGNALED':
      return `signal:${str(attrs(e, 'workflowExecutionSignaledEventAttributes').signalName)}`;
    case 'WORKFLOW_EXECUTION_UPDATE_ACCEPTED': {
      const req = attrs(e, 'workflowExecutionUpdateAcceptedEventAttributes').acceptedRequest as Json;
      return `update:${str(attrs(req ?? {}, 'input').name)}`;
    }
    case 'SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED':
      return `signal-external:${str(attrs(e, 'signalExternalWorkflowExecutionInitiatedEventAttributes').signalName)}`;
    case 'REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED':
      return 'cancel-external';
    case 'ACTIVITY_TASK_FAILED':
    case 'ACTIVITY_TASK_TIMED_OUT':
    case 'ACTIVITY_TASK_CANCELED':
    case 'CHILD_WORKFLOW_EXECUTION_FAILED':
    case 'CHILD_WORKFLOW_EXECUTION_CANCELED':
      return t.toLowerCase();
    default:
      return t.startsWith('WORKFLOW_EXECUTION_') && !t.endsWith('STARTED') ? `end:${t.slice(19)}` : undefined;
  }
}

function read(file: string, source: string): Recorded | undefined {
  const json = fs.readFileSync(file, 'utf8');
  const events = (JSON.parse(json) as { events?: Json[] }).events ?? [];
  const first = events[0];
  if (!first) return undefined;
  const type = nameOf(attrs(first, 'workflowExecutionStartedEventAttributes').workflowType);
  const steps = events.map(step).filter((s): s is string => s !== undefined);
  const status = (steps.at(-1) ?? 'end:?').replace(/^end:/, '').toLowerCase();
  const features = new Set<string>();
  steps.forEach((s, i) => {
    features.add(`${type}|${s}`);
    if (i > 0) features.add(`${type}|${steps[i - 1]}>${s}`);
  });
  return { source, json, type, status, steps, features };
}

/** Greedy set cover: the fewest histories that together show every feature seen and not `known`. */
function cover(all: Recorded[], known: Set<string>): Recorded[] {
  const uncovered = new Set(all.flatMap((r) => [...r.features]).filter((f) => !known.has(f)));
  const chosen: Recorded[] = [];
  while (uncovered.size > 0) {
    let best: Recorded | undefined;
    let gain = 0;
    for (const r of all) {
      const g = [...r.features].filter((f) => uncovered.has(f)).length;
      // Ties go to the smaller history: the archive stays light.
      if (g > gain || (g === gain && g > 0 && best && r.json.length < best.json.length)) {
        best = r;
        gain = g;
      }
    }
    if (!best) break;
    chosen.push(best);
    for (const f of best.features) uncovered.delete(f);
  }
  return chosen;
}

/** A file name that says what the history shows: type, inputs it took, how it ended. */
function nameFor(r: Recorded, taken: Set<string>): string {
  const tags = new Set<string>();
  for (const s of r.steps) {
    const [kind, name] = s.split(':');
    if ((kind === 'signal' || kind === 'update') && name) tags.add(name);
    if (kind === 'marker' && s.split(':')[2]) tags.add(`patch-${s.split(':')[2]}`);
  }
  if (r.status !== 'completed') tags.add(r.status.replace(/_/g, '-'));
  const base = [r.type.replace(/Workflow$/, ''), ...[...tags].sort()].join('-').slice(0, 90);
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

const args = parseArgs(process.argv.slice(2));
const outDir = path.join(HISTORIES, args.folder);
if (fs.existsSync(outDir)) {
  process.stderr.write(
    `record-histories: ${path.relative(ROOT, outDir)} exists; the archive only grows: pass --as <new folder>\n`,
  );
  process.exit(2);
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-record-'));
process.stdout.write(`running ${args.tests.join(' ')} with ORCH_RECORD_HISTORIES=${tmp}\n`);
const run = spawnSync('npx', ['vitest', 'run', '--project', 'temporal', ...args.tests], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { ...process.env, ORCH_RECORD_HISTORIES: tmp },
});
if (run.status !== 0) process.stdout.write('some tests failed: recording the histories they left\n');

const recorded: Recorded[] = [];
for (const f of fs.readdirSync(tmp, { recursive: true, encoding: 'utf8' })) {
  if (!f.endsWith('.json')) continue;
  const r = read(path.join(tmp, f), f);
  if (r) recorded.push(r);
}
// What the archive already shows needs no second copy: the new folder holds what is new.
const known = new Set<string>();
for (const f of fs.readdirSync(HISTORIES, { recursive: true, encoding: 'utf8' })) {
  if (f.endsWith('.json')) for (const k of read(path.join(HISTORIES, f), f)?.features ?? []) known.add(k);
}
const chosen = cover(recorded, known).sort((a, b) => a.type.localeCompare(b.type));
if (chosen.length === 0) {
  process.stdout.write(
    `the archive already shows every step of the ${recorded.length} histories: nothing new\n`,
  );
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(run.status === 0 ? 0 : 1);
}
fs.mkdirSync(outDir);
const archive = JSON.parse(fs.readFileSync(ARCHIVE, 'utf8')) as Record<string, string>;
const taken = new Set<string>();
const lines = [
  `# Histories recorded ${args.folder}`,
  '',
  `By scripts/record-histories.ts from ${args.tests.join(', ')}: the fewest histories that cover every`,
  'step seen (activities, children, timers, signals, updates, patch markers by id, outcomes, consecutive',
  'pairs) that no earlier folder of the archive shows.',
  '',
  '| file | workflow type | outcome | steps |',
  '| --- | --- | --- | --- |',
];
for (const r of chosen) {
  const name = `${nameFor(r, taken)}.json`;
  fs.writeFileSync(path.join(outDir, name), r.json, { flag: 'wx' });
  archive[`${args.folder}/${name}`] = crypto.createHash('sha1').update(r.json).digest('hex');
  lines.push(`| ${name} | ${r.type} | ${r.status} | ${r.steps.length} |`);
}
fs.writeFileSync(path.join(outDir, 'README.md'), lines.join('\n') + '\n');
const sorted = Object.fromEntries(Object.entries(archive).sort(([a], [b]) => a.localeCompare(b)));
fs.writeFileSync(ARCHIVE, JSON.stringify(sorted, null, 2) + '\n');
const types = [...new Set(chosen.map((r) => r.type))].sort();
process.stdout.write(
  `recorded ${chosen.length} of ${recorded.length} histories into ${path.relative(ROOT, outDir)} (${types.join(', ')})\n`,
);
fs.rmSync(tmp, { recursive: true, force: true });
