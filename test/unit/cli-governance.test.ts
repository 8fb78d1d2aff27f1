/**
 * `orchestrator governance validate|check` as a user runs them (the real CLI in a subprocess, no server),
 * and the intake loader resolving gates from the layered policies.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { DEFAULT_POLICY_DIR } from '../../config/governance';
import { parseIntake } from '../../config/intake';
import { runCli } from '../harness/cli';

let tmp: string;

function write(rel: string, text: string): string {
  const file = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** A copy of the shipped policies, to break one file at a time. */
function policyDir(name: string, files: Record<string, string> = {}): string {
  const dir = path.join(tmp, name);
  fs.cpSync(DEFAULT_POLICY_DIR, dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-cli-gov-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('governance validate', () => {
  it('accepts the shipped policies', async () => {
    const r = await runCli(['governance', 'validate']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('policies OK (all clients)');
  });

  it('names the file and the field of each problem, and exits 2', async () => {
    const dir = policyDir('bad', {
      'default.yaml': [
        'version: 1',
        'phases:',
        '  qa:',
        '    - id: tests',
        '      kind: tool',
        '      command: []',
        '      timeout_s: -5',
      ].join('\n'),
      'clients/globex.yaml': ['phases:', '  qa:', '    - id: coverage', '      threshold: high'].join('\n'),
      'clients/initech.yaml': 'phases:\n  qa: [ {id: x\n',
    });
    const r = await runCli(['governance', 'validate', '--dir', dir]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toContain(
      `${dir}/default.yaml: phases.qa[0].command: must have at least the program name (an argv array; use ["sh", "-c", "…"] for a shell)`,
    );
    expect(lines).toContain(`${dir}/default.yaml: phases.qa[0].timeout_s: must be positive`);
    // The default's coverage gate is gone (the broken file replaced it), so the client patch has nothing to patch.
    expect(lines).toContain(
      `${dir}/clients/globex.yaml: phases.qa[0].kind: is required (no earlier gate "coverage" to override)`,
    );
    expect(lines.some((l) => l.startsWith(`${dir}/clients/initech.yaml:3:1: invalid YAML:`))).toBe(true);
    // acme-corp patches coverage too, so the broken default breaks it as well.
    expect(lines).toContain(
      `${dir}/clients/acme-corp.yaml: phases.qa[0].kind: is required (no earlier gate "coverage" to override)`,
    );
    expect(lines.at(-1)).toBe('orchestrator: 5 problem(s) in the governance policies');
  });

  it('checks one client with --client, and a wrong type names the field', async () => {
    const dir = policyDir('client', {
      'clients/globex.yaml': [
        'phases:',
        '  qa:',
        '    - id: coverage',
        '      threshold: high',
        '      on_fail: explode',
      ].join('\n'),
    });
    const bad = await runCli(['governance', 'validate', '--dir', dir, '--client', 'globex', '--json']);
    expect(bad.code).toBe(2);
    const out = JSON.parse(bad.stdout) as { ok: boolean; problems: string[] };
    expect(out.ok).toBe(false);
    expect(out.problems).toEqual([
      `${dir}/clients/globex.yaml: phases.qa[0].on_fail: Invalid option: expected one of "retry_phase"|"rollback"|"pause_for_approval"|"fail"`,
      `${dir}/clients/globex.yaml: phases.qa[0].threshold: Invalid input: expected number, received string`,
    ]);
    const good = await runCli(['governance', 'validate', '--dir', dir, '--client', 'acme-corp']);
    expect(good.code, good.stderr).toBe(0);
  });
});

describe('governance check', () => {
  it("runs a phase's gates on a workspace: the client's stricter threshold fails where the default passes", async () => {
    const ws = path.join(tmp, 'ws');
    write('ws/package.json', '{"name":"w","scripts":{"test":"true"}}');
    write('ws/coverage/coverage-summary.json', '{"total":{"lines":{"pct":85}}}');
    const plain = await runCli(['governance', 'check', '--phase', 'qa', '--workspace', ws]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain('✓ coverage (metric, on_fail retry_phase): 85 >= 80');
    expect(plain.stdout).toContain('all 3 gate(s) passed');

    const acme = await runCli([
      'governance',
      'check',
      '--phase',
      'qa',
      '--workspace',
      ws,
      '--client',
      'acme-corp',
      '--json',
    ]);
    expect(acme.code).toBe(1);
    const r = JSON.parse(acme.stdout) as {
      passed: boolean;
      results: { id: string; passed: boolean; summary: string }[];
    };
    expect(r.passed).toBe(false);
    expect(r.results.find((g) => g.id === 'coverage')).toMatchObject({
      passed: false,
      summary: '85 not >= 90',
    });
    expect(r.results.map((g) => g.id).sort()).toEqual([
      'coverage',
      'license-header',
      'no-private-keys',
      'tests',
    ]);
  });

  it("shows a failing tool gate's output, and a missing workspace is one clear line", async () => {
    const dir = policyDir('tool', {
      'default.yaml': [
        'phases:',
        '  qa:',
        '    - id: lint',
        '      kind: tool',
        "      command: [sh, -c, 'echo lint-says-no; exit 4']",
      ].join('\n'),
    });
    const ws = path.join(tmp, 'ws-tool');
    fs.mkdirSync(ws);
    const r = await runCli(['governance', 'check', '--phase', 'qa', '--workspace', ws, '--dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      '✗ lint (tool, on_fail fail): `sh -c echo lint-says-no; exit 4` exited 4 (expected 0)',
    );
    expect(r.stdout).toContain('| lint-says-no');
    const missing = await runCli([
      'governance',
      'check',
      '--phase',
      'qa',
      '--workspace',
      path.join(tmp, 'nope'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(
      `orchestrator: workspace: ${path.join(tmp, 'nope')} is not an existing directory`,
    );
  });
});

describe('intake gates from the layered policy', () => {
  const intake = (client?: string, gates = '') =>
    [
      `project: { name: p${client ? `, client: ${client}` : ''} }`,
      'phases:',
      '  - name: qa',
      "    agents: [{ role: qa, backend: script, command: ['true'] }]",
      gates,
    ].join('\n');

  it('fills each phase with its policy gates, the client and the intake overriding by id', () => {
    const spec = parseIntake(
      intake('acme-corp', '    gates: [{ id: tests, enabled: false }, { id: coverage, threshold: 95 }]'),
      'i.yaml',
    );
    const gates = spec.phases[0]!.gates;
    expect(gates.map((g) => g.id).sort()).toEqual(['coverage', 'license-header', 'no-private-keys']);
    expect(gates.find((g) => g.id === 'coverage')).toMatchObject({
      kind: 'metric',
      threshold: 95,
      on_fail: 'retry_phase',
    });
  });

  it('a bad policy file fails the intake with the policy file and field named', () => {
    const dir = policyDir('intake-bad', {
      'clients/globex.yaml': 'phases:\n  qa:\n    - { id: coverage, op: "=>" }\n',
    });
    expect(() => parseIntake(intake('globex'), 'i.yaml', undefined, { policyDir: dir })).toThrow(ConfigError);
    expect(() => parseIntake(intake('globex'), 'i.yaml', undefined, { policyDir: dir })).toThrow(
      `${dir}/clients/globex.yaml: phases.qa[0].op: Invalid option: expected one of ">="|">"|"<="|"<"|"=="`,
    );
  });

  it('a bad intake gate or client name names the intake path', () => {
    expect(() =>
      parseIntake(intake(undefined, '    gates: [{ id: mystery, threshold: 3 }]'), 'i.yaml'),
    ).toThrow('i.yaml: phases[0].gates[0].kind: is required (no earlier gate "mystery" to override)');
    expect(() => parseIntake(intake('../etc'), 'i.yaml')).toThrow(
      'i.yaml: project.client: must be letters, digits, - or _, starting with a letter or digit',
    );
  });
});
