/**
 * The api backend's tools: a small registry whose every path is confined to the agent's workspace. Each tool
 * validates its input with zod; a bad call becomes an error *result* the model can read and correct, never
 * an exception.
 */
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { glob } from 'tinyglobby';
import { z } from 'zod';
import { WorkspaceGlobSchema } from '../../src/shared/spec';
import { defaultSandbox, type Sandbox } from '../sandbox';
import { runProgram, type RunResult } from '../sandbox/run';
import { fallbackRefusal } from '../sandbox/fallback';
import { capText, OUTPUT_CAP_BYTES } from './process';
import { WorkspaceEscapeError, relativeToWorkspace, resolveInWorkspace } from './workspace';

export const ToolResultSchema = z.object({
  ok: z.boolean(),
  /** What the model sees; capped at {@link OUTPUT_CAP_BYTES}. */
  output: z.string(),
  error: z.string().optional(),
});
export type ToolResult = z.infer<typeof ToolResultSchema>;

const relPath = z.string().min(1).describe('Path relative to the workspace root');
const optionalGlob = WorkspaceGlobSchema.optional();

export const ToolInputSchemas = {
  read_file: z.object({ path: relPath }),
  write_file: z.object({
    path: relPath,
    content: z.string().describe('The complete new file content'),
  }),
  list_files: z.object({
    pattern: optionalGlob.describe('Glob relative to the workspace root; default **/*'),
  }),
  search: z.object({
    pattern: z.string().min(1).describe('JavaScript regular expression searched line by line'),
    glob: optionalGlob.describe('Files to search, as a glob relative to the workspace root; default **/*'),
  }),
  run_command: z.object({
    argv: z
      .array(z.string())
      .min(1)
      .describe('Program and arguments, run without a shell; use ["sh","-c","…"] for shell syntax'),
    timeout_s: z
      .number()
      .positive()
      .max(3600)
      .optional()
      .describe('Kill the command after this many seconds; default 120'),
    cwd: relPath.optional().describe('Working directory relative to the workspace root; default the root'),
  }),
  git: z.object({
    op: z.enum(['status', 'diff', 'commit']),
    message: z.string().min(1).optional().describe('Commit message; required for op "commit"'),
  }),
  sql: z.object({
    query: z
      .string()
      .min(1)
      .max(100_000)
      .describe(
        "One DuckDB SQL statement; workspace files are tables by relative path, e.g. SELECT region, sum(units) FROM 'data/sales.csv' GROUP BY 1",
      ),
    max_rows: z
      .number()
      .int()
      .positive()
      .max(10_000)
      .optional()
      .describe('Rows returned at most; default 200'),
  }),
} as const;

export type ToolName = keyof typeof ToolInputSchemas;
export const TOOL_NAMES = Object.keys(ToolInputSchemas) as ToolName[];

const DESCRIPTIONS: Record<ToolName, string> = {
  read_file: 'Read a text file of the workspace.',
  write_file: 'Create or overwrite a file of the workspace (parent directories are created).',
  list_files: 'List the files of the workspace matching a glob (node_modules and .git are skipped).',
  search: 'Search the files of the workspace for a regular expression; prints path:line: text.',
  run_command: 'Run a program in the workspace without a shell; prints its combined output and exit code.',
  git: 'Git in the workspace: status, diff, or commit all changes with a message.',
  sql: 'Run SQL (DuckDB) over the CSV, Parquet and JSON files of the workspace; prints the result as JSON {columns, rows, row_count, truncated}.',
};

/** What a tool may do, most to least harmless: the registry's safety class. */
export type SafetyClass = 'read-only' | 'writes-workspace' | 'runs-programs';

/** The text every tool returns to the model, unless its entry says it is structured. */
const TextOutput = z.string().describe('Text shown to the model');
/** The sql tool's output (as JSON text). */
export const SqlOutputSchema = z.object({
  columns: z.array(z.string()),
  rows: z.array(z.array(z.unknown())),
  row_count: z.number().int().describe('Rows the query produced (before max_rows)'),
  truncated: z.boolean(),
});

/** Each tool's safety class, time limit and output: the registry `orchestrator tools` lists. */
const TOOL_META: Record<ToolName, { safety: SafetyClass; timeoutS: number; output: z.ZodType }> = {
  read_file: { safety: 'read-only', timeoutS: 60, output: TextOutput },
  write_file: { safety: 'writes-workspace', timeoutS: 60, output: TextOutput },
  list_files: { safety: 'read-only', timeoutS: 60, output: TextOutput },
  search: { safety: 'read-only', timeoutS: 120, output: TextOutput },
  run_command: { safety: 'runs-programs', timeoutS: 3600, output: TextOutput },
  git: { safety: 'runs-programs', timeoutS: 120, output: TextOutput },
  // DuckDB runs in its own process, confined like run_command: it reads the workspace and nothing else.
  sql: { safety: 'read-only', timeoutS: 120, output: SqlOutputSchema },
};

/** One registry entry, as `orchestrator tools list|show` prints it. */
export interface ToolInfo {
  name: ToolName;
  description: string;
  safety: SafetyClass;
  timeout_s: number;
  input_schema: Record<string, unknown>;
  output_schema: Record<string, unknown>;
}

/** The tools registry: every api tool with its schemas (JSON Schema, from zod), safety class and time limit. */
export function toolRegistry(): ToolInfo[] {
  return TOOL_NAMES.map((name) => ({
    name,
    description: DESCRIPTIONS[name],
    safety: TOOL_META[name].safety,
    timeout_s: TOOL_META[name].timeoutS,
    input_schema: z.toJSONSchema(ToolInputSchemas[name], { io: 'input' }),
    output_schema: z.toJSONSchema(TOOL_META[name].output, { io: 'output' }),
  }));
}

/** An Anthropic tool definition (the Messages API `tools[]` entry). */
export interface ToolDefinition {
  name: ToolName;
  description: string;
  input_schema: { type: 'object'; [key: string]: unknown };
}

/** Definitions of all tools, for the Messages API `tools` parameter; generated from the zod schemas. */
export const toolDefinitions: ToolDefinition[] = TOOL_NAMES.map((name) => ({
  name,
  description: DESCRIPTIONS[name],
  input_schema: { ...z.toJSONSchema(ToolInputSchemas[name], { io: 'input' }), type: 'object' },
}));

export const DEFAULT_COMMAND_TIMEOUT_S = 120;
const DEFAULT_SQL_ROWS = 200;

/**
 * The sql tool's program, run by the worker's node inside the sandbox: argv is the DuckDB package's
 * path, the query and the row limit. It prints one JSON line, or the error on stderr and exits 1.
 * External access is off too: no extension downloads, no files outside the working directory.
 */
const SQL_RUNNER = `
const { DuckDBInstance } = require(process.argv[1]);
(async () => {
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const c = await db.connect();
  const dir = "'" + process.cwd().replace(/'/g, "''") + "'";
  for (const q of ['SET autoinstall_known_extensions = false', 'SET autoload_known_extensions = false',
    'SET allowed_directories = [' + dir + ']', 'SET enable_external_access = false']) await c.run(q);
  const r = await c.runAndReadAll(process.argv[2]);
  const max = Number(process.argv[3]);
  const rows = r.getRowsJson();
  process.stdout.write(JSON.stringify({ columns: r.columnNames(), rows: rows.slice(0, max), row_count: rows.length, truncated: rows.length > max }));
})().catch((e) => { process.stderr.write(String(e && e.message || e)); process.exit(1); });
`;

/** Where the DuckDB package lives (the sandbox must let the runner read it). */
function duckdbPackage(): { main: string; dir: string } {
  const main = createRequire(import.meta.url).resolve('@duckdb/node-api');
  // node_modules/@duckdb holds the API, its bindings and the platform binary.
  const scope = main.slice(0, main.lastIndexOf(`${path.sep}node-api${path.sep}`));
  return { main, dir: scope };
}
const MAX_LISTED = 2000;
const MAX_SEARCH_FILE_BYTES = 1024 * 1024;
const IGNORED = ['**/node_modules/**', '**/.git/**'];

export interface ToolContext {
  workspace: string;
  /** Aborts a running command (activity cancellation). */
  signal?: AbortSignal;
  /** Confines `run_command` and `git`; default {@link defaultSandbox}. */
  sandbox?: Sandbox;
  /** The tools this agent may call; others are refused as an error result. Default all. */
  allowedTools?: readonly string[];
}

const ok = (output: string): ToolResult => ({ ok: true, output: capText(output) });
const fail = (error: string, output = ''): ToolResult => ({ ok: false, output: capText(output), error });

function commandResult(r: RunResult, timeoutS: number): ToolResult {
  if (r.spawnError) return fail(r.spawnError, r.output);
  if (r.timedOut) return fail(`timed out after ${timeoutS}s; the process group was killed`, r.output);
  if (r.cancelled) return fail('cancelled; the process group was killed', r.output);
  if (r.exitCode !== 0) return fail(`exit code ${String(r.exitCode)}`, r.output);
  return ok(r.output);
}

async function listFiles(workspace: string, pattern: string): Promise<string[]> {
  const root = await fs.realpath(workspace);
  const files = await glob(pattern, {
    cwd: root,
    dot: true,
    ignore: IGNORED,
    followSymbolicLinks: false,
    onlyFiles: true,
  });
  return files.sort();
}

type Impl<N extends ToolName> = (
  input: z.infer<(typeof ToolInputSchemas)[N]>,
  ctx: ToolContext,
) => Promise<ToolResult>;

const impls: { [N in ToolName]: Impl<N> } = {
  async read_file({ path: p }, { workspace }) {
    const file = await resolveInWorkspace(workspace, p);
    const stat = await fs.stat(file);
    if (!stat.isFile()) return fail(`"${p}" is not a file`);
    const handle = await fs.open(file, 'r');
    try {
      // Read at most a little over the cap: a huge file must not be loaded whole to show 64 KiB of it.
      const buf = Buffer.alloc(Math.min(stat.size, OUTPUT_CAP_BYTES * 2));
      await handle.read(buf, 0, buf.length, 0);
      const text = buf.toString('utf8');
      return ok(stat.size > buf.length ? `${text}\n[… file truncated: ${stat.size} bytes in total …]` : text);
    } finally {
      await handle.close();
    }
  },

  async write_file({ path: p, content }, { workspace }) {
    const file = await resolveInWorkspace(workspace, p);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
    return ok(`wrote ${Buffer.byteLength(content)} bytes to ${await relativeToWorkspace(workspace, file)}`);
  },

  async list_files({ pattern }, { workspace }) {
    const files = await listFiles(workspace, pattern ?? '**/*');
    const shown = files.slice(0, MAX_LISTED);
    const more = files.length > shown.length ? `\n[… ${files.length - shown.length} more files …]` : '';
    return ok(shown.length ? shown.join('\n') + more : '(no files)');
  },

  async search({ pattern, glob: g }, { workspace }) {
    let re: RegExp;
    try {
      re = new RegExp(pattern);
    } catch (err) {
      return fail(`invalid regular expression: ${(err as Error).message}`);
    }
    const lines: string[] = [];
    let bytes = 0;
    for (const rel of await listFiles(workspace, g ?? '**/*')) {
      // A symlinked file may point outside the workspace: resolve before reading.
      const file = await resolveInWorkspace(workspace, rel).catch(() => undefined);
      if (!file) continue;
      const stat = await fs.stat(file);
      if (stat.size > MAX_SEARCH_FILE_BYTES) continue;
      const text = await fs.readFile(file, 'utf8');
      if (text.includes('\0')) continue;
      const fileLines = text.split('\n');
      for (let i = 0; i < fileLines.length && bytes < OUTPUT_CAP_BYTES; i++) {
        const line = fileLines[i] ?? '';
        if (!re.test(line)) continue;
        const hit = `${rel}:${i + 1}: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`;
        lines.push(hit);
        bytes += hit.length + 1;
      }
      if (bytes >= OUTPUT_CAP_BYTES) break;
    }
    return ok(lines.length ? lines.join('\n') : '(no matches)');
  },

  async run_command({ argv, timeout_s, cwd }, { workspace, signal, sandbox }) {
    const dir = await resolveInWorkspace(workspace, cwd ?? '.');
    const timeoutS = timeout_s ?? DEFAULT_COMMAND_TIMEOUT_S;
    const box = sandbox ?? defaultSandbox();
    const root = await fs.realpath(workspace);
    // Without a sandbox, the one thing left is not to run what plainly names a path outside.
    if ((await box.state()).kind === 'none') {
      const refusal = fallbackRefusal(argv, root, dir);
      if (refusal) return fail(refusal);
    }
    // Confined to the workspace, with no network: a model-chosen command reaches nothing else.
    const r = await runProgram(argv, {
      sandbox: box,
      workspace: root,
      cwd: dir,
      network: false,
      fixed: { NO_COLOR: '1' },
      timeoutMs: timeoutS * 1000,
      signal,
    });
    return commandResult(r, timeoutS);
  },

  async git({ op, message }, { workspace, signal, sandbox }) {
    const root = await fs.realpath(workspace);
    const git = (...args: string[]) =>
      runProgram(['git', ...args], {
        sandbox: sandbox ?? defaultSandbox(),
        workspace: root,
        network: false,
        fixed: { NO_COLOR: '1' },
        timeoutMs: DEFAULT_COMMAND_TIMEOUT_S * 1000,
        signal,
      });
    if (op === 'status')
      return commandResult(await git('status', '--short', '--branch'), DEFAULT_COMMAND_TIMEOUT_S);
    if (op === 'diff') return commandResult(await git('diff'), DEFAULT_COMMAND_TIMEOUT_S);
    if (!message) return fail('git commit needs a message');
    const add = await git('add', '-A');
    if (add.exitCode !== 0) return commandResult(add, DEFAULT_COMMAND_TIMEOUT_S);
    // A fixed identity: the worker's machine may have none configured, and agent commits should say who made them.
    const commit = await git(
      '-c',
      'user.name=Orchestrator Agent',
      '-c',
      'user.email=agent@orchestrator.invalid',
      'commit',
      '-m',
      message,
    );
    return commandResult(commit, DEFAULT_COMMAND_TIMEOUT_S);
  },

  sql: runSql,
};

async function runSql(
  { query, max_rows }: z.infer<(typeof ToolInputSchemas)['sql']>,
  { workspace, signal, sandbox }: ToolContext,
): Promise<ToolResult> {
  const root = await fs.realpath(workspace);
  const duck = duckdbPackage();
  const timeoutS = TOOL_META.sql.timeoutS;
  const r = await runProgram(
    [process.execPath, '-e', SQL_RUNNER, duck.main, query, String(max_rows ?? DEFAULT_SQL_ROWS)],
    {
      sandbox: sandbox ?? defaultSandbox(),
      workspace: root,
      cwd: root,
      network: false,
      readable: [await fs.realpath(duck.dir)],
      fixed: { NO_COLOR: '1' },
      timeoutMs: timeoutS * 1000,
      signal,
    },
  );
  if (r.exitCode === 1 && !r.timedOut && !r.cancelled) return fail(`SQL error: ${r.output.trim()}`);
  return commandResult(r, timeoutS);
}

function formatIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : 'input'}: ${i.message}`).join('; ');
}

/** Runs one tool call. Refusals and failures are results (`ok: false`) for the model to read. */
export async function executeTool(name: string, input: unknown, ctx: ToolContext): Promise<ToolResult> {
  if (!(name in ToolInputSchemas)) return fail(`unknown tool "${name}" (tools: ${TOOL_NAMES.join(', ')})`);
  const toolName = name as ToolName;
  if (ctx.allowedTools && !ctx.allowedTools.includes(toolName))
    return fail(
      `tool "${toolName}" is not allowed for this agent (allowed: ${ctx.allowedTools.join(', ') || 'none'})`,
    );
  const parsed = ToolInputSchemas[toolName].safeParse(input);
  if (!parsed.success) return fail(`invalid input for ${toolName}: ${formatIssues(parsed.error)}`);
  try {
    // The registry maps each name to the impl for that same name; TS cannot correlate the union here.
    const impl = impls[toolName] as Impl<ToolName>;
    return await impl(parsed.data, ctx);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) return fail(err.message);
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT')
      return fail(`no such file or directory: ${JSON.stringify((input as { path?: string }).path ?? '')}`);
    if (e.code === 'EISDIR' || e.code === 'ENOTDIR' || e.code === 'EACCES') return fail(e.message);
    throw err;
  }
}
