/**
 * The sql tool on real DuckDB (@duckdb/node-api), run in its own process confined like run_command: it
 * answers from the workspace's CSV files, refuses paths outside the workspace and reports bad SQL as an
 * error result; the registry lists it with its schemas and safety class.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { executeTool, toolRegistry } from '../../activities/tools/tools';
import { loadConfig } from '../../config/env';
import { preflight } from '../../src/preflight';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { runCli } from '../harness/cli';

describe('sql tool', () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-sql-'));
  fs.mkdirSync(path.join(ws, 'data'));
  fs.writeFileSync(path.join(ws, 'data', 'sales.csv'), 'region,units\nnorth,10\nsouth,32\nnorth,5\n');
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-sql-outside-'));
  fs.writeFileSync(path.join(outside, 'secret.csv'), 'k\nTOP-SECRET-1\n');
  fs.symlinkSync(path.join(outside, 'secret.csv'), path.join(ws, 'link.csv'));

  it('answers from a workspace CSV by relative path, as JSON with columns and rows', async () => {
    const r = await executeTool(
      'sql',
      { query: "SELECT region, sum(units) AS total FROM 'data/sales.csv' GROUP BY 1 ORDER BY 1" },
      { workspace: ws },
    );
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.output)).toEqual({
      columns: ['region', 'total'],
      rows: [
        ['north', '15'],
        ['south', '32'],
      ],
      row_count: 2,
      truncated: false,
    });
    const capped = await executeTool(
      'sql',
      { query: 'SELECT * FROM range(5)', max_rows: 2 },
      { workspace: ws },
    );
    expect(JSON.parse(capped.output)).toMatchObject({ row_count: 5, truncated: true, rows: [['0'], ['1']] });
  }, 120_000);

  it('reads nothing outside the workspace, directly or through a symlink; bad SQL is an error result', async () => {
    for (const query of [
      `SELECT * FROM read_csv('${path.join(outside, 'secret.csv')}')`,
      "SELECT * FROM read_csv('link.csv')",
      "SELECT * FROM read_text('/etc/hostname')",
    ]) {
      const r = await executeTool('sql', { query }, { workspace: ws });
      expect(r.ok).toBe(false);
      expect(r.output).not.toContain('TOP-SECRET-1');
    }
    const bad = await executeTool('sql', { query: 'SELEC nonsense' }, { workspace: ws });
    expect(bad.ok).toBe(false);
    expect(bad.error).toMatch(/^SQL error: .*syntax error/i);
  }, 120_000);

  it('is in the registry with input and output schemas, a safety class and a time limit', () => {
    const sql = toolRegistry().find((t) => t.name === 'sql')!;
    expect(sql).toMatchObject({ safety: 'read-only', timeout_s: 120 });
    expect(sql.input_schema).toMatchObject({ required: ['query'] });
    expect(Object.keys(sql.output_schema.properties as object)).toEqual([
      'columns',
      'rows',
      'row_count',
      'truncated',
    ]);
    const classes = Object.fromEntries(toolRegistry().map((t) => [t.name, t.safety]));
    expect(classes).toMatchObject({
      write_file: 'writes-workspace',
      run_command: 'runs-programs',
      read_file: 'read-only',
    });
  });

  it('`orchestrator tools list` shows each tool with its input schema and safety class; show prints the JSON Schemas', async () => {
    const list = await runCli(['tools', 'list']);
    expect(list.code).toBe(0);
    // eslint-disable-next-line no-control-regex
    list.stdout = list.stdout.replace(/\x1b\[[0-9;]*m/g, '');
    expect(list.stdout).toMatch(/│ sql +│ read-only +│ 120 s +│ query: string, max_rows\?: *│/);
    expect(list.stdout).toMatch(/│ run_command +│ runs-programs +│/);
    expect(list.stdout).toMatch(/│ write_file +│ writes-workspace +│/);
    const json = JSON.parse((await runCli(['tools', 'list', '--json'])).stdout) as { name: string }[];
    expect(json.map((t) => t.name)).toEqual(toolRegistry().map((t) => t.name));
    const show = await runCli(['tools', 'show', 'sql']);
    expect(show.stdout).toContain('safety: read-only');
    expect(show.stdout).toContain('"row_count"');
    const unknown = await runCli(['tools', 'show', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown tool "nope" (tools: read_file, ');
  }, 120_000);

  it('preflight refuses an unknown tool, naming the field', async () => {
    const spec = ProjectSpecSchema.parse({
      project: { name: 'p' },
      phases: [{ name: 'a', agents: [{ role: 'analyst', backend: 'api', tools: ['read_file', 'duckdb'] }] }],
    });
    await expect(
      preflight(spec, { config: loadConfig({ ...process.env, LOG_LEVEL: 'silent' }), rehearse: true }),
    ).rejects.toThrow('phases[0].agents[0].tools[1]: unknown tool "duckdb" (tools: read_file, ');
  });
});
