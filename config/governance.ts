/**
 * Governance policies: quality gates that run at every phase boundary.
 *
 * Policies are YAML files in `config/governance/`, layered universal < default < client:
 *   universal.yaml, default.yaml, clients/<client>.yaml
 * Each file lists gates per phase (`phases: { qa: [...], '*': [...] }`, `*` = every phase). A later layer
 * overrides an earlier one BY GATE ID: an entry with `kind` replaces the earlier gate outright; an entry
 * without `kind` is a patch whose fields are laid over the earlier gate (e.g. `{ id: coverage, threshold: 90 }`).
 * A patch under a phase may patch a `*` gate, which then differs for that phase only. `enabled: false`
 * switches a gate off. Gates in an intake phase (`PhaseSpec.gates`) are one more layer on top, with the
 * same rules ({@link gatesForPhase}).
 *
 * Mandatory gates: a gate marked `mandatory: true` (every gate of universal.yaml is, unless it says
 * `mandatory: false`) can be tightened by a later layer but never loosened: a client policy or an intake
 * may raise its threshold, lower its max_retries, raise min_files or make on_fail `fail`, and nothing
 * else; disabling, replacing or otherwise changing it is refused naming the gate and the policy file that
 * made it mandatory. Switching off a gate that is not mandatory is allowed and reported as a waiver, which
 * the run records in its audit trail.
 *
 * Clients: `project.client` (or `--client`) must name a file in `clients/`; an unknown client is an error
 * listing the known ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadYaml } from './yaml';
import { z } from 'zod';
import { WorkspaceGlobSchema } from '../src/shared/spec';
import { ConfigError, formatZodIssues } from './errors';

/** Where the shipped policies live. */
export const DEFAULT_POLICY_DIR = fileURLToPath(new URL('./governance', import.meta.url));

const NAME_RE = /^[a-z0-9][a-z0-9_.-]*$/i;

function isValidRegex(src: string): boolean {
  try {
    new RegExp(src);
    return true;
  } catch {
    return false;
  }
}

const RegexSchema = z
  .string()
  .min(1, 'must not be empty')
  .refine(isValidRegex, 'must be a valid regular expression');
const ArgvSchema = z
  .array(z.string().min(1, 'must not be empty'))
  .min(1, 'must have at least the program name (an argv array; use ["sh", "-c", "…"] for a shell)');
const TimeoutSchema = z.number().positive('must be positive');

export const OnFailSchema = z.enum(['retry_phase', 'rollback', 'pause_for_approval', 'fail']);
export type OnFail = z.infer<typeof OnFailSchema>;

export const GateKindSchema = z.enum(['metric', 'tool', 'validator']);
export type GateKind = z.infer<typeof GateKindSchema>;

const gateBase = {
  id: z.string().regex(NAME_RE, 'must be letters, digits, ., - or _'),
  description: z.string().optional(),
  on_fail: OnFailSchema.default('fail'),
  /** How often `retry_phase` may retry before the gate counts as failed for good. */
  max_retries: z.number().int().nonnegative().optional(),
  enabled: z.boolean().default(true),
  /** Later layers may only tighten a mandatory gate (see the module doc). Default: true in universal.yaml. */
  mandatory: z.boolean().optional(),
  /**
   * Workspace-relative glob: when nothing matches, the gate is skipped (passes), e.g. `package.json` so a
   * Node test gate leaves other kinds of project alone.
   */
  if_exists: WorkspaceGlobSchema.optional(),
};

/** Where a metric's value comes from: a JSON file in the workspace, or a command's output. */
export const MetricSourceSchema = z
  .strictObject({
    /** Workspace-relative JSON file, e.g. `coverage/coverage-summary.json`. */
    file: WorkspaceGlobSchema.optional(),
    /** Dotted path into the JSON, e.g. `total.lines.pct`; numeric segments index arrays. */
    json_path: z.string().min(1).optional(),
    command: ArgvSchema.optional(),
    /** Matched against the command's output; the first capture group (else the match) is the value. */
    regex: RegexSchema.optional(),
    timeout_s: TimeoutSchema.default(300),
  })
  .superRefine((s, ctx) => {
    const add = (p: string, message: string) => ctx.addIssue({ code: 'custom', path: [p], message });
    if ((s.file === undefined) === (s.command === undefined)) {
      add(s.file === undefined ? 'file' : 'command', 'give either file + json_path or command + regex');
    }
    if (s.file !== undefined && s.json_path === undefined) add('json_path', 'is required with file');
    if (s.command !== undefined && s.regex === undefined) add('regex', 'is required with command');
  });
export type MetricSource = z.infer<typeof MetricSourceSchema>;

export const MetricGateSchema = z.strictObject({
  ...gateBase,
  kind: z.literal('metric'),
  source: MetricSourceSchema,
  op: z.enum(['>=', '>', '<=', '<', '==']),
  threshold: z.number(),
});

export const ToolGateSchema = z.strictObject({
  ...gateBase,
  kind: z.literal('tool'),
  /** Run in the workspace without a shell (unless argv is `sh -c …`). */
  command: ArgvSchema,
  timeout_s: TimeoutSchema.default(600),
  expect_exit: z.number().int().default(0),
});

export const ValidatorGateSchema = z.strictObject({
  ...gateBase,
  kind: z.literal('validator'),
  /** Workspace-relative glob of the files to check (symlinks are not followed). */
  glob: WorkspaceGlobSchema,
  /** Globs left out (node_modules and .git are always left out). */
  exclude: z.array(WorkspaceGlobSchema).default([]),
  /** Every matched file must match this (`^` is the start of the file, e.g. a license header). */
  must_contain: RegexSchema.optional(),
  /** No matched file may match this. */
  must_not_contain: RegexSchema.optional(),
  /** Fewest files the glob must match (default 0: an empty match passes). */
  min_files: z.number().int().nonnegative().default(0),
});

/** A complete gate. Also validates gates from an intake file. */
export const GateSchema = z.discriminatedUnion('kind', [
  MetricGateSchema,
  ToolGateSchema,
  ValidatorGateSchema,
]);
export type Gate = z.infer<typeof GateSchema>;
export type MetricGate = z.infer<typeof MetricGateSchema>;
export type ToolGate = z.infer<typeof ToolGateSchema>;
export type ValidatorGate = z.infer<typeof ValidatorGateSchema>;

const PhaseKeySchema = z.string().refine((k) => k === '*' || NAME_RE.test(k), 'must be a phase name or "*"');

/** One policy file before its gates are checked (gates are checked while layering, see the module doc). */
const PolicyFileSchema = z.strictObject({
  version: z.literal(1).optional(),
  description: z.string().optional(),
  phases: z.record(PhaseKeySchema, z.array(z.unknown())).default({}),
});

/** A gate switched off by a layer: allowed only for gates that are not mandatory, and put on record. */
export interface GateWaiver {
  /** Phase key (`*` = every phase) or phase name. */
  phase: string;
  gate: string;
  /** The policy file, or the intake path (`phases[2].gates[0]`), that switched it off. */
  by: string;
}

/** The layered policy: gates per phase key (`*` = every phase), disabled gates included. */
export interface ResolvedPolicy {
  client?: string;
  /** Files that contributed, lowest layer first. */
  sources: string[];
  phases: Record<string, Gate[]>;
  /** Mandatory gates by id, with the policy file that made each one mandatory. */
  mandatory: Record<string, string>;
  /** Gates the policy layers switched off. */
  waived: GateWaiver[];
}

// ---------------------------------------------------------------------------------------------------------

function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** zod issues as `path: message`, naming the offending key for unknown fields. */
function issuesAt(err: z.ZodError, prefix: string): string[] {
  const issues = err.issues.map((i) => {
    if (i.code === 'unrecognized_keys' && i.keys.length === 1) {
      return { ...i, path: [...i.path, i.keys[0] as string], message: 'unknown field' };
    }
    // A bad record key (a phase name) carries the useful message one level down.
    if (i.code === 'invalid_key' && i.issues[0]) return { ...i, message: i.issues[0].message };
    return i;
  });
  return formatZodIssues(new z.ZodError(issues), prefix);
}

type GateTable = Map<string, Map<string, Gate>>;

/** What layering tracks besides the gates: where mandatory gates come from, and gates switched off. */
interface LayerContext {
  mandatory: Map<string, string>;
  waived: GateWaiver[];
  /** Names the layer in a waiver (a policy file, or the intake). */
  by: string;
}

const FAIL_ACTIONS = new Set(['fail']);
/** Fields a later layer may change on a mandatory gate (only in the tightening direction, see below). */
const TIGHTENABLE = new Set([
  'description',
  'threshold',
  'max_retries',
  'min_files',
  'on_fail',
  'enabled',
  'mandatory',
]);

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Why `next` loosens the mandatory gate `earlier`; undefined when it only tightens it (or is equal). */
export function loosening(earlier: Gate, next: Gate): string | undefined {
  if (!next.enabled) return 'it may not be disabled';
  if (next.mandatory === false) return 'it may not be made optional (mandatory: false)';
  if (next.kind !== earlier.kind) return `it may not be replaced by a ${next.kind} gate`;
  const a = earlier as Record<string, unknown>;
  const b = next as Record<string, unknown>;
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!TIGHTENABLE.has(key) && !sameJson(a[key], b[key])) return `its ${key} may not change`;
  }
  if (earlier.kind === 'metric' && next.kind === 'metric' && next.threshold !== earlier.threshold) {
    const up = earlier.op === '>=' || earlier.op === '>';
    const down = earlier.op === '<=' || earlier.op === '<';
    if (!(up && next.threshold > earlier.threshold) && !(down && next.threshold < earlier.threshold)) {
      return `its threshold may only be made stricter than ${earlier.op} ${earlier.threshold} (got ${next.threshold})`;
    }
  }
  if ((next.max_retries ?? 1) > (earlier.max_retries ?? 1)) {
    return `its max_retries may only go down from ${earlier.max_retries ?? 1} (got ${next.max_retries})`;
  }
  if (earlier.kind === 'validator' && next.kind === 'validator' && next.min_files < earlier.min_files) {
    return `its min_files may only go up from ${earlier.min_files} (got ${next.min_files})`;
  }
  if (next.on_fail !== earlier.on_fail && !FAIL_ACTIONS.has(next.on_fail)) {
    return `its on_fail may only become fail (it is ${earlier.on_fail}; got ${next.on_fail})`;
  }
  return undefined;
}

/**
 * Applies `entries` (full gates or patches) for `phaseKey` onto `table`. Problems are pushed as
 * `<label><path>: message`; bad entries are skipped so that every problem is reported in one pass.
 */
function applyEntries(
  table: GateTable,
  phaseKey: string,
  entries: unknown[],
  pathPrefix: string,
  label: string,
  problems: string[],
  ctx?: LayerContext,
): void {
  const target = table.get(phaseKey) ?? new Map<string, Gate>();
  table.set(phaseKey, target);
  entries.forEach((entry, i) => {
    const at = `${pathPrefix}[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(`${label}${at}: must be a gate (a mapping with id and kind)`);
      return;
    }
    const rec = entry as Record<string, unknown>;
    let candidate: unknown = rec;
    if (!('kind' in rec)) {
      const id = typeof rec.id === 'string' ? rec.id : undefined;
      const earlier = id === undefined ? undefined : (target.get(id) ?? table.get('*')?.get(id));
      if (!earlier) {
        problems.push(
          id === undefined
            ? `${label}${at}.id: is required`
            : `${label}${at}.kind: is required (no earlier gate "${id}" to override)`,
        );
        return;
      }
      candidate = { ...earlier, ...rec };
    }
    const parsed = GateSchema.safeParse(candidate);
    if (!parsed.success) {
      problems.push(...issuesAt(parsed.error, at).map((p) => `${label}${p}`));
      return;
    }
    const gate = parsed.data;
    const earlier = target.get(gate.id) ?? table.get('*')?.get(gate.id);
    if (earlier?.mandatory) {
      const why = loosening(earlier, gate);
      if (why) {
        const origin = ctx?.mandatory.get(gate.id);
        problems.push(
          `${label}${at}: gate "${gate.id}" is mandatory${origin ? ` (${displayPath(origin)})` : ''}: ${why}; it can be tightened, never loosened`,
        );
        return;
      }
    }
    if (gate.mandatory && ctx && !ctx.mandatory.has(gate.id)) ctx.mandatory.set(gate.id, ctx.by);
    if (earlier?.enabled && !gate.enabled)
      ctx?.waived.push({ phase: phaseKey, gate: gate.id, by: `${ctx.by}${label ? '' : ` ${at}`}` });
    target.set(gate.id, gate);
  });
}

interface Layer {
  file: string;
  phases: Record<string, unknown[]>;
}

/** Reads one policy file; undefined when it does not exist. Problems name the file and the field. */
function readLayer(file: string, problems: string[]): Layer | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    problems.push(`${displayPath(file)}: cannot read: ${(err as Error).message}`);
    return undefined;
  }
  const doc = loadYaml().parseDocument(text);
  const yamlErr = doc.errors[0];
  if (yamlErr) {
    const pos = yamlErr.linePos?.[0];
    const where = pos ? `:${pos.line}:${pos.col}` : '';
    const msg = yamlErr.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'invalid YAML';
    problems.push(`${displayPath(file)}${where}: invalid YAML: ${msg}`);
    return undefined;
  }
  const parsed = PolicyFileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    problems.push(...issuesAt(parsed.error, '').map((p) => `${displayPath(file)}: ${p}`));
    return undefined;
  }
  return { file, phases: parsed.data.phases };
}

function layerFiles(dir: string, client: string | undefined): string[] {
  const files = [path.join(dir, 'universal.yaml'), path.join(dir, 'default.yaml')];
  if (client !== undefined) files.push(path.join(dir, 'clients', `${client}.yaml`));
  return files;
}

function checkClient(client: string | undefined): void {
  if (client !== undefined && !NAME_RE.test(client)) {
    throw new ConfigError(`client: must be letters, digits, ., - or _ (got ${JSON.stringify(client)})`);
  }
}

/** Every gate universal.yaml defines is mandatory unless it says otherwise. */
function mandatoryByDefault(entries: unknown[]): unknown[] {
  return entries.map((e) =>
    e && typeof e === 'object' && !Array.isArray(e) && 'kind' in e && !('mandatory' in e)
      ? { ...e, mandatory: true }
      : e,
  );
}

function resolve(dir: string, client: string | undefined, problems: string[]): ResolvedPolicy {
  const table: GateTable = new Map();
  const sources: string[] = [];
  const mandatory = new Map<string, string>();
  const waived: GateWaiver[] = [];
  for (const file of layerFiles(dir, client)) {
    const layer = readLayer(file, problems);
    if (!layer) continue;
    sources.push(file);
    const universal = path.basename(file) === 'universal.yaml' && path.dirname(file) === dir;
    const ctx: LayerContext = { mandatory, waived, by: displayPath(file) };
    // '*' first, so that a phase entry in the same file may patch a '*' gate.
    const keys = Object.keys(layer.phases).sort((a, b) => (a === '*' ? -1 : b === '*' ? 1 : 0));
    for (const key of keys) {
      const entries = layer.phases[key] ?? [];
      applyEntries(
        table,
        key,
        universal ? mandatoryByDefault(entries) : entries,
        `phases.${key}`,
        `${displayPath(file)}: `,
        problems,
        ctx,
      );
    }
  }
  const phases = Object.fromEntries([...table].map(([k, gates]) => [k, [...gates.values()]]));
  return {
    ...(client !== undefined ? { client } : {}),
    sources,
    phases,
    mandatory: Object.fromEntries(mandatory),
    waived,
  };
}

/** The clients that have a policy file in `<dir>/clients/`. */
export function knownClients(dir: string = DEFAULT_POLICY_DIR): string[] {
  try {
    return fs
      .readdirSync(path.join(dir, 'clients'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -'.yaml'.length))
      .sort();
  } catch {
    return [];
  }
}

/** A client must have a policy file: a typo must not silently fall back to the default policy. */
function checkKnownClient(client: string | undefined, dir: string): void {
  if (client === undefined) return;
  const known = knownClients(dir);
  if (!known.includes(client)) {
    throw new ConfigError(
      `client: unknown client "${client}"; known clients: ${known.length ? known.join(', ') : 'none'} (policies in ${displayPath(path.join(dir, 'clients'))})`,
    );
  }
}

/**
 * Loads and layers the policies for `client` (none: universal + default). An unknown client (no file in
 * `clients/`) is an error listing the known ones. Throws {@link ConfigError} naming the file and the
 * field of the first problem.
 */
export function loadPolicy(opts: { client?: string; dir?: string } = {}): ResolvedPolicy {
  checkClient(opts.client);
  checkKnownClient(opts.client, opts.dir ?? DEFAULT_POLICY_DIR);
  const problems: string[] = [];
  const policy = resolve(opts.dir ?? DEFAULT_POLICY_DIR, opts.client, problems);
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : '';
    throw new ConfigError(`${problems[0]}${more}`);
  }
  return policy;
}

/**
 * Checks the policies and returns every problem found (empty = valid). With `client`, checks that client's
 * layering; without, checks universal + default and every file in `clients/`.
 */
export function validatePolicies(opts: { client?: string; dir?: string } = {}): string[] {
  const dir = opts.dir ?? DEFAULT_POLICY_DIR;
  if (opts.client !== undefined) {
    try {
      checkClient(opts.client);
      checkKnownClient(opts.client, dir);
    } catch (err) {
      return [(err as Error).message];
    }
    const problems: string[] = [];
    resolve(dir, opts.client, problems);
    return problems;
  }
  const problems: string[] = [];
  resolve(dir, undefined, problems);
  let clientFiles: string[] = [];
  try {
    clientFiles = fs.readdirSync(path.join(dir, 'clients')).filter((f) => /\.ya?ml$/.test(f));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      problems.push(`${path.join(dir, 'clients')}: cannot read`);
  }
  for (const f of clientFiles.sort()) {
    const client = f.replace(/\.ya?ml$/, '');
    if (!f.endsWith('.yaml')) {
      problems.push(`${displayPath(path.join(dir, 'clients', f))}: client policies must end in .yaml`);
      continue;
    }
    if (!NAME_RE.test(client)) {
      problems.push(
        `${displayPath(path.join(dir, 'clients', f))}: file name must be letters, digits, ., - or _`,
      );
      continue;
    }
    // Only the client's own layer can add problems beyond those already reported for the base layers.
    const clientProblems: string[] = [];
    resolve(dir, client, clientProblems);
    const clientFile = displayPath(path.join(dir, 'clients', f));
    problems.push(...clientProblems.filter((p) => p.startsWith(clientFile)));
  }
  return problems;
}

/**
 * Lays `entries` (full gates or patches by id, as in a policy file) over `base`. Throws
 * {@link ConfigError} whose message names each bad field under `pathPrefix` (e.g. `phases[2].gates`).
 * The result includes disabled gates.
 */
export function mergeGates(
  base: Gate[],
  entries: unknown[],
  pathPrefix = 'gates',
  origins: Record<string, string> = {},
  waived: GateWaiver[] = [],
  phase = 'phase',
): Gate[] {
  const table: GateTable = new Map([[phase, new Map(base.map((g) => [g.id, g]))]]);
  const problems: string[] = [];
  const ctx: LayerContext = { mandatory: new Map(Object.entries(origins)), waived, by: 'intake' };
  applyEntries(table, phase, entries, pathPrefix, '', problems, ctx);
  if (problems.length > 0) throw new ConfigError(problems.join('; '));
  return [...(table.get(phase)?.values() ?? [])];
}

/**
 * The enabled gates for `phase`: the policy's `*` gates, overridden by its gates for that phase, then by
 * the intake phase's own `gates` (validated here; problems are reported under `pathPrefix`).
 */
export function gatesForPhase(
  policy: ResolvedPolicy,
  phase: string,
  intakeGates: unknown[] = [],
  pathPrefix = 'gates',
): Gate[] {
  return phaseGates(policy, phase, intakeGates, pathPrefix).gates;
}

/**
 * {@link gatesForPhase}, and the gates switched off for that phase (by a policy layer or the intake),
 * which the run puts in its audit trail. A refusal to loosen a mandatory gate names the gate and the
 * policy file that made it mandatory.
 */
export function phaseGates(
  policy: ResolvedPolicy,
  phase: string,
  intakeGates: unknown[] = [],
  pathPrefix = 'gates',
): { gates: Gate[]; waived: GateWaiver[] } {
  const byId = new Map<string, Gate>();
  for (const g of policy.phases['*'] ?? []) byId.set(g.id, g);
  if (phase !== '*') for (const g of policy.phases[phase] ?? []) byId.set(g.id, g);
  const waived: GateWaiver[] = (policy.waived ?? [])
    .filter((w) => (w.phase === '*' || w.phase === phase) && byId.get(w.gate)?.enabled === false)
    .map((w) => ({ ...w, phase }));
  const intakeWaived: GateWaiver[] = [];
  const merged = mergeGates(
    [...byId.values()],
    intakeGates,
    pathPrefix,
    policy.mandatory ?? {},
    intakeWaived,
    phase,
  );
  for (const w of intakeWaived) {
    // The intake's own path is more useful than "intake": the message names the gate entry.
    waived.push({ ...w, by: `intake ${w.by.replace(/^intake ?/, '')}`.trim() });
  }
  return { gates: merged.filter((g) => g.enabled), waived };
}
