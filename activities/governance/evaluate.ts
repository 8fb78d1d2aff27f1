/**
 * Gate evaluation: runs each gate against a workspace and returns a verdict with small evidence (a
 * command's output tail, the metric value read, the offending files) that goes into the audit trail.
 *
 * Every path a gate names is confined to the workspace, symlinks included. A gate that cannot be evaluated
 * (missing file, bad JSON, command not found) fails with a summary saying why; only a missing workspace or
 * an invalid gate throws.
 */
import { createHash } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../../config/errors';
import type { Gate, MetricGate, OnFail, ToolGate, ValidatorGate } from '../../config/governance';
import {
  blobId,
  listWorkspace,
  LruMap,
  mapLimit,
  matcher,
  rememberHash,
  shareLook,
  type Staging,
  type WorkspaceEntry,
} from '../workspace/files';
import { STATE_DIR } from '../workspace/git';
import { pace, readSmallSync } from '../workspace/small';
import { defaultSandbox, type Sandbox } from '../sandbox';
import { runProgram, type RunResult as CommandResult } from '../sandbox/run';

/** Output tail kept in evidence. */
export const EVIDENCE_OUTPUT_BYTES = 4096;
/** Offending files listed in evidence (the count is always complete). */
export const EVIDENCE_MAX_FILES = 20;
/** Output kept for a metric command's regex to search. */
const METRIC_OUTPUT_BYTES = 1024 * 1024;
/** Validator files above this size are not read (listed as skipped). */
const MAX_VALIDATED_FILE_BYTES = 2 * 1024 * 1024;

export interface GateResult {
  id: string;
  kind: Gate['kind'];
  passed: boolean;
  on_fail: OnFail;
  max_retries?: number;
  /** One line for humans. */
  summary: string;
  /** Small, JSON-serializable facts behind the verdict. */
  evidence: Record<string, unknown>;
}

export interface GateEvaluation {
  passed: boolean;
  results: GateResult[];
}

export interface EvaluateOptions {
  /** Absolute path of the workspace. */
  workspace: string;
  gates: Gate[];
  signal?: AbortSignal;
  /** Confines gate commands; default {@link defaultSandbox}. */
  sandbox?: Sandbox;
  /** Called before each gate (the activity heartbeats from here). */
  onGate?: (gate: Gate) => void;
}

type Verdict = Pick<GateResult, 'passed' | 'summary' | 'evidence'>;

/** How gate commands run: in the sandbox, without network, cancelled with the activity. */
interface GateRun {
  signal?: AbortSignal;
  sandbox: Sandbox;
}

/** Runs a gate's command confined to the workspace, keeping the tail of its output. */
function runGateCommand(root: string, argv: string[], timeoutS: number, keepBytes: number, run: GateRun) {
  return runProgram(argv, {
    sandbox: run.sandbox,
    workspace: root,
    network: false,
    // Test runners switch to CI behaviour (no watch mode, no colour) with these.
    fixed: { CI: '1', NO_COLOR: '1' },
    timeoutMs: timeoutS * 1000,
    keep: 'tail',
    capBytes: keepBytes,
    killGraceMs: 3000,
    signal: run.signal,
  });
}

/** A path a gate names that resolves outside the workspace. */
class OutsideWorkspace extends Error {}

/**
 * Resolves a workspace-relative path and refuses anything outside the workspace, following symlinks. With
 * a blocking call: a validator confines every file it reads, and realpath's own lookups are microseconds.
 */
function confine(root: string, rel: string): string {
  const abs = path.resolve(root, rel);
  const inside = (p: string) => p === root || p.startsWith(root + path.sep);
  if (!inside(abs)) throw new OutsideWorkspace(`${rel}: outside the workspace`);
  let real: string;
  try {
    real = fsSync.realpathSync.native(abs);
  } catch {
    return abs; // does not exist: nothing to escape through; the caller reports it missing
  }
  if (!inside(real)) throw new OutsideWorkspace(`${rel}: resolves outside the workspace`);
  return real;
}

function tailOf(text: string, bytes = EVIDENCE_OUTPUT_BYTES): string {
  const buf = Buffer.from(text, 'utf8');
  return buf.length <= bytes ? text : buf.subarray(buf.length - bytes).toString('utf8');
}

function commandEvidence(argv: string[], r: CommandResult, withOutput: boolean): Record<string, unknown> {
  return {
    command: argv,
    exit_code: r.exitCode ?? null,
    ...(r.signal ? { signal: r.signal } : {}),
    ...(r.timedOut ? { timed_out: true } : {}),
    ...(r.cancelled ? { cancelled: true } : {}),
    ...(r.spawnError ? { spawn_error: r.spawnError } : {}),
    duration_ms: r.durationMs,
    ...(withOutput ? { output_tail: tailOf(r.output) } : {}),
  };
}

function commandFailure(r: CommandResult, timeoutS: number): string | undefined {
  if (r.spawnError) return `could not start: ${r.spawnError}`;
  if (r.timedOut) return `timed out after ${timeoutS}s`;
  if (r.cancelled) return 'cancelled';
  return undefined;
}

async function evaluateTool(root: string, gate: ToolGate, run: GateRun): Promise<Verdict> {
  const r = await runGateCommand(root, gate.command, gate.timeout_s, EVIDENCE_OUTPUT_BYTES, run);
  const problem = commandFailure(r, gate.timeout_s);
  const passed = problem === undefined && r.exitCode === gate.expect_exit;
  const shown = gate.command.join(' ');
  const summary = passed
    ? `\`${shown}\` exited ${r.exitCode}`
    : `\`${shown}\` ${problem ?? `exited ${r.exitCode ?? r.signal} (expected ${gate.expect_exit})`}`;
  return { passed, summary, evidence: commandEvidence(gate.command, r, !passed) };
}

function compare(value: number, op: MetricGate['op'], threshold: number): boolean {
  switch (op) {
    case '>=':
      return value >= threshold;
    case '>':
      return value > threshold;
    case '<=':
      return value <= threshold;
    case '<':
      return value < threshold;
    case '==':
      return value === threshold;
  }
}

/** Walks `a.b.0.c` (or `a.b[0].c`) into parsed JSON. */
function atJsonPath(data: unknown, jsonPath: string): unknown {
  const segments = jsonPath
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter((s) => s !== '');
  let cur: unknown = data;
  for (const seg of segments) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

async function readMetric(
  root: string,
  gate: MetricGate,
  run: GateRun,
): Promise<{ value?: number; problem?: string; evidence: Record<string, unknown> }> {
  const src = gate.source;
  if (src.file !== undefined) {
    const evidence: Record<string, unknown> = { file: src.file, json_path: src.json_path };
    let data: unknown;
    try {
      const text = await fs.readFile(confine(root, src.file), 'utf8');
      data = JSON.parse(text);
    } catch (err) {
      if (err instanceof OutsideWorkspace) return { problem: err.message, evidence };
      const code = (err as NodeJS.ErrnoException).code;
      return {
        problem: code === 'ENOENT' ? `${src.file} not found` : `${src.file}: ${(err as Error).message}`,
        evidence,
      };
    }
    const raw = atJsonPath(data, src.json_path ?? '');
    const value = toNumber(raw);
    if (value === undefined) {
      const got = raw === undefined ? 'nothing' : JSON.stringify(raw).slice(0, 100);
      return { problem: `${src.file}: ${src.json_path} is not a number (found ${got})`, evidence };
    }
    return { value, evidence };
  }

  const argv = src.command ?? [];
  const r = await runGateCommand(root, argv, src.timeout_s, METRIC_OUTPUT_BYTES, run);
  const failure = commandFailure(r, src.timeout_s);
  if (failure)
    return { problem: `\`${argv.join(' ')}\` ${failure}`, evidence: commandEvidence(argv, r, true) };
  // The last match wins: tools print their final figure last.
  const matches = [...r.output.matchAll(new RegExp(src.regex ?? '', 'gm'))];
  const last = matches.at(-1);
  const value = toNumber(last?.[1] ?? last?.[0]);
  if (value === undefined) {
    return {
      problem: last
        ? `regex matched "${last[0].slice(0, 100)}", which is not a number`
        : 'regex did not match the output',
      evidence: { ...commandEvidence(argv, r, true), regex: src.regex },
    };
  }
  return { value, evidence: { ...commandEvidence(argv, r, false), regex: src.regex } };
}

async function evaluateMetric(root: string, gate: MetricGate, run: GateRun): Promise<Verdict> {
  const m = await readMetric(root, gate, run);
  const evidence = { ...m.evidence, op: gate.op, threshold: gate.threshold };
  if (m.value === undefined) {
    return {
      passed: false,
      summary: `metric unavailable: ${m.problem}`,
      evidence: { ...evidence, value: null },
    };
  }
  const passed = compare(m.value, gate.op, gate.threshold);
  return {
    passed,
    summary: `${m.value} ${passed ? gate.op : `not ${gate.op}`} ${gate.threshold}`,
    evidence: { ...evidence, value: m.value },
  };
}

/** Files a gate may look at: never `.orchestrator/`, `.git` or `node_modules`, never through a symlink. */
const ALWAYS_EXCLUDED = ['**/node_modules/**', '**/.git/**', `${STATE_DIR}/**`];

/**
 * The workspace's files, listed once per evaluation (from the shadow index when the run has one);
 * `staged` is the look behind the listing, once taken.
 */
type Files = (() => Promise<WorkspaceEntry[]>) & { staged?: Staging };

function filesOf(root: string): Files {
  let listing: Promise<WorkspaceEntry[]> | undefined;
  const files: Files = () =>
    (listing ??= listWorkspace(root, { onStaged: (s) => (files.staged = s) }).then((l) =>
      l.entries.filter((e) => e.kind !== 'symlink'),
    ));
  return files;
}

async function workspaceFiles(files: Files, pattern: string, exclude: string[]): Promise<WorkspaceEntry[]> {
  const isMatch = rememberedMatcher(pattern, exclude);
  return (await files()).filter((e) => isMatch(e.path)).sort((a, b) => (a.path < b.path ? -1 : 1));
}

/**
 * Whether a path matches a gate's glob, remembered by glob and path: a gate over `**\/*` matched every path
 * of a 10,000-file tree at every phase (~15–60 ms of CPU, more than the nine files it read), where
 * nearly every path is one it matched the phase before. Bounded: a glob's answers are forgotten past
 * {@link MATCHED_MAX_PATHS}, all of them past {@link MATCHED_MAX_GLOBS} globs.
 */
const MATCHED = new Map<string, { isMatch: (p: string) => boolean; seen: Map<string, boolean> }>();
const MATCHED_MAX_GLOBS = 64;
const MATCHED_MAX_PATHS = 100_000;

function rememberedMatcher(pattern: string, exclude: readonly string[]): (p: string) => boolean {
  const key = JSON.stringify([pattern, exclude]);
  let m = MATCHED.get(key);
  if (!m) {
    if (MATCHED.size >= MATCHED_MAX_GLOBS) MATCHED.clear();
    m = { isMatch: matcher(pattern, [...ALWAYS_EXCLUDED, ...exclude]), seen: new Map() };
    MATCHED.set(key, m);
  }
  const { isMatch, seen } = m;
  if (seen.size > MATCHED_MAX_PATHS) seen.clear();
  return (p) => {
    let v = seen.get(p);
    if (v === undefined) seen.set(p, (v = isMatch(p)));
    return v;
  };
}

/**
 * Files that passed a content rule: by blob id, the ids of the rules it passed (` 3 7 `). A file's verdict
 * depends only on its content, so an unchanged file (same blob) is not read again at the next phase, in
 * any workspace. Keyed by the blob id alone, the lookup of a 10,000-file tree's every phase costs ~1 ms;
 * by a `<rule>:<blob>` string built per lookup it cost ~170 ms of CPU on a loaded machine.
 */
const PASSED = new LruMap(200_000);
/** Rule ids by the rule's JSON (must_contain, must_not_contain); bounded, with {@link PASSED} forgotten. */
const RULE_IDS = new Map<string, number>();
const MAX_RULES = 10_000;

/** The token of a content rule in {@link PASSED}'s values. */
function ruleToken(rule: string): string {
  let id = RULE_IDS.get(rule);
  if (id === undefined) {
    if (RULE_IDS.size >= MAX_RULES) {
      RULE_IDS.clear();
      PASSED.clear();
    }
    id = RULE_IDS.size;
    RULE_IDS.set(rule, id);
  }
  return ` ${id} `;
}

function hasPassed(blob: string, token: string): boolean {
  return PASSED.get(blob)?.includes(token) ?? false;
}

function markPassed(blob: string, token: string): void {
  const v = PASSED.get(blob);
  if (v === undefined) PASSED.set(blob, token);
  else if (!v.includes(token)) PASSED.set(blob, `${v}${token.slice(1)}`);
}
/** Files read at once by a validator. */
const READ_CONCURRENCY = 8;

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

async function evaluateValidator(root: string, gate: ValidatorGate, all: Files): Promise<Verdict> {
  const files = await workspaceFiles(all, gate.glob, gate.exclude);
  const mustContain = gate.must_contain !== undefined ? new RegExp(gate.must_contain) : undefined;
  const mustNot = gate.must_not_contain !== undefined ? new RegExp(gate.must_not_contain) : undefined;
  const rule = ruleToken(JSON.stringify([gate.must_contain ?? null, gate.must_not_contain ?? null]));
  const offending: Array<{ file: string; reason: string }> = [];
  const skipped: string[] = [];
  let read = 0;

  if (mustContain || mustNot) {
    const toRead = files.filter((f) => !(f.blob && hasPassed(f.blob, rule)));
    const verdicts = await mapLimit(toRead, READ_CONCURRENCY, async ({ path: rel, blob }) => {
      let content: Buffer;
      try {
        const abs = confine(root, rel);
        // Most files are small and read with blocking calls (../workspace/small): the thread pool's round
        // trips cost more than the reads.
        await pace();
        const small = readSmallSync(abs);
        if (small === 'special' || small === 'link') return { rel, reason: 'not a regular file' };
        if (small === 'large') {
          const stat = await fs.stat(abs);
          if (stat.size > MAX_VALIDATED_FILE_BYTES) return { rel, skipped: true };
          content = await fs.readFile(abs);
        } else {
          content = small;
        }
      } catch (err) {
        const reason =
          err instanceof OutsideWorkspace
            ? 'resolves outside the workspace'
            : `unreadable: ${(err as Error).message}`;
        return { rel, reason };
      }
      read++;
      // Only bytes that are what git indexed may vouch for the blob (the file did not change meanwhile); a
      // file listed without one (a walk: no shadow index yet) is judged by the blob of what was read, so a
      // first evaluation before any snapshot still spares the next one a re-read.
      const actual = blobId(content);
      const vouched = blob ?? actual;
      rememberHash(vouched, actual, createHash('sha256').update(content).digest('hex'), content.length);
      const text = content.toString('utf8');
      if (mustContain && !mustContain.test(text)) return { rel, reason: 'missing required pattern' };
      const bad = mustNot?.exec(text);
      if (bad) return { rel, reason: `forbidden pattern at line ${lineOf(text, bad.index)}` };
      if (actual === vouched) markPassed(vouched, rule);
      return { rel };
    });
    for (const v of verdicts) {
      if (v.skipped) skipped.push(v.rel);
      else if (v.reason !== undefined) offending.push({ file: v.rel, reason: v.reason });
    }
  }

  const tooFew = files.length < gate.min_files;
  const passed = offending.length === 0 && !tooFew;
  const summary = tooFew
    ? `${files.length} file(s) match ${gate.glob}, at least ${gate.min_files} required`
    : passed
      ? `${files.length} file(s) checked, all conform`
      : `${offending.length} of ${files.length} file(s) do not conform`;
  return {
    passed,
    summary,
    evidence: {
      glob: gate.glob,
      files_checked: files.length,
      files_read: read,
      offending_count: offending.length,
      offending: offending.slice(0, EVIDENCE_MAX_FILES),
      ...(skipped.length > 0
        ? { skipped_too_large: skipped.slice(0, EVIDENCE_MAX_FILES), skipped_count: skipped.length }
        : {}),
    },
  };
}

async function evaluateOne(root: string, gate: Gate, files: Files, run: GateRun): Promise<Verdict> {
  switch (gate.kind) {
    case 'tool':
      return evaluateTool(root, gate, run);
    case 'metric':
      return evaluateMetric(root, gate, run);
    case 'validator':
      return evaluateValidator(root, gate, files);
  }
}

/** Checks that the workspace is an existing directory and returns its real path. */
export async function resolveWorkspace(workspace: string): Promise<string> {
  if (!path.isAbsolute(workspace))
    throw new ConfigError(`workspace: must be an absolute path (got ${workspace})`);
  try {
    const real = await fs.realpath(workspace);
    if (!(await fs.stat(real)).isDirectory()) throw new Error('not a directory');
    return real;
  } catch {
    throw new ConfigError(`workspace: ${workspace} is not an existing directory`);
  }
}

/**
 * Evaluates gates one after another (tool gates such as test suites must not compete for the workspace).
 * Throws ConfigError only when the workspace is missing.
 */
export async function evaluateGateList(opts: EvaluateOptions): Promise<GateEvaluation> {
  const root = await resolveWorkspace(opts.workspace);
  const results: GateResult[] = [];
  // Listed once, when first needed, and again after a gate that ran a command (it may have written files).
  let files = filesOf(root);
  const run: GateRun = { signal: opts.signal, sandbox: opts.sandbox ?? defaultSandbox() };
  for (const gate of opts.gates) {
    opts.onGate?.(gate);
    const head = {
      id: gate.id,
      kind: gate.kind,
      on_fail: gate.on_fail,
      ...(gate.max_retries !== undefined ? { max_retries: gate.max_retries } : {}),
    };
    if (gate.if_exists !== undefined && (await workspaceFiles(files, gate.if_exists, [])).length === 0) {
      results.push({
        ...head,
        passed: true,
        summary: `skipped: nothing matches ${gate.if_exists}`,
        evidence: { skipped: true },
      });
      continue;
    }
    results.push({ ...head, ...(await evaluateOne(root, gate, files, run)) });
    if (gate.kind !== 'validator') files = filesOf(root);
  }
  // The listing was taken after the last command a gate ran (`files` is renewed after each): the tree is
  // what it saw, so the checkpoint after the gates may commit it without walking again.
  if (files.staged) await shareLook(files.staged);
  return { passed: results.every((r) => r.passed), results };
}
