import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import {
  GateSchema,
  gatesForPhase,
  loadPolicy,
  phaseGates,
  mergeGates,
  validatePolicies,
  type Gate,
  type MetricGate,
} from '../../config/governance';

/** Writes a policy directory from { 'universal.yaml': text, 'clients/x.yaml': text }. */
function policyDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-gov-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const DEFAULT = `
phases:
  qa:
    - id: coverage
      kind: metric
      source: { file: coverage/coverage-summary.json, json_path: total.lines.pct }
      op: '>='
      threshold: 80
      on_fail: retry_phase
    - id: tests
      kind: tool
      command: [npm, test]
`;

const byId = (gates: Gate[], id: string) => gates.find((g) => g.id === id);

describe('shipped policies', () => {
  it('are valid', () => {
    expect(validatePolicies()).toEqual([]);
  });

  it('acme-corp raises the default coverage threshold and adds its license gate', () => {
    const base = gatesForPhase(loadPolicy(), 'qa');
    const acme = gatesForPhase(loadPolicy({ client: 'acme-corp' }), 'qa');
    expect((byId(base, 'coverage') as MetricGate).threshold).toBe(80);
    const cov = byId(acme, 'coverage') as MetricGate;
    expect(cov.threshold).toBe(90);
    // The patch keeps everything else from the default gate.
    expect(cov.source.file).toBe('coverage/coverage-summary.json');
    expect(cov.on_fail).toBe('retry_phase');
    expect(byId(acme, 'license-header')?.kind).toBe('validator');
    expect(byId(acme, 'no-private-keys')?.kind).toBe('validator');
    expect(byId(base, 'license-header')).toBeUndefined();
  });

  it('an unknown client (a typo) is an error listing the known ones, never the default policy', () => {
    expect(configError(() => loadPolicy({ client: 'acme-crop' }))).toMatch(
      /^client: unknown client "acme-crop"; known clients: acme-corp \(/,
    );
    expect(validatePolicies({ client: 'acme-crop' })).toEqual([
      expect.stringMatching(/unknown client "acme-crop"; known clients: acme-corp/),
    ]);
  });
});

describe('layering', () => {
  it('a later layer overrides an earlier one by gate id, full gate or patch', () => {
    const dir = policyDir({
      'universal.yaml': `
phases:
  '*':
    - { id: secrets, kind: validator, glob: '**/*', must_not_contain: 'SECRET', mandatory: false }
`,
      'default.yaml': DEFAULT,
      'clients/strict.yaml': `
phases:
  qa:
    - id: coverage
      threshold: 95
      on_fail: pause_for_approval
    - id: tests
      kind: tool
      command: [make, check]
      timeout_s: 5
    - id: secrets
      enabled: false
`,
    });
    const qa = gatesForPhase(loadPolicy({ client: 'strict', dir }), 'qa');
    expect(qa.map((g) => g.id).sort()).toEqual(['coverage', 'tests']);
    expect(byId(qa, 'coverage')).toMatchObject({ threshold: 95, on_fail: 'pause_for_approval', op: '>=' });
    expect(byId(qa, 'tests')).toMatchObject({ command: ['make', 'check'], timeout_s: 5, expect_exit: 0 });
    // Disabling the '*' gate for qa leaves it on elsewhere.
    expect(gatesForPhase(loadPolicy({ client: 'strict', dir }), 'dev').map((g) => g.id)).toEqual(['secrets']);
    // Without the client, defaults stand.
    expect(byId(gatesForPhase(loadPolicy({ dir }), 'qa'), 'coverage')).toMatchObject({ threshold: 80 });
    // Switching off a gate that is not mandatory is allowed, and on record.
    expect(phaseGates(loadPolicy({ client: 'strict', dir }), 'qa').waived).toEqual([
      { phase: 'qa', gate: 'secrets', by: `${dir}/clients/strict.yaml` },
    ]);
  });
});

describe('mandatory gates: tightened, never loosened', () => {
  const dir = policyDir({
    'universal.yaml': `
phases:
  '*':
    - { id: no-keys, kind: validator, glob: '**/*', must_not_contain: 'PRIVATE KEY' }
  qa:
    - { id: cov, kind: metric, source: { file: c.json, json_path: pct }, op: '>=', threshold: 80, on_fail: retry_phase, max_retries: 2 }
`,
    'default.yaml': 'phases: {}\n',
    'clients/loose.yaml': "phases:\n  '*':\n    - { id: no-keys, enabled: false }\n",
    'clients/tight.yaml': 'phases:\n  qa:\n    - { id: cov, threshold: 95, max_retries: 1, on_fail: fail }\n',
  });

  it('universal gates are mandatory by default; a client policy may raise but not disable them', () => {
    const universal = `${dir}/universal.yaml`;
    expect(configError(() => loadPolicy({ client: 'loose', dir }))).toBe(
      `${dir}/clients/loose.yaml: phases.*[0]: gate "no-keys" is mandatory (${universal}): it may not be disabled; it can be tightened, never loosened`,
    );
    const tight = gatesForPhase(loadPolicy({ client: 'tight', dir }), 'qa');
    expect(byId(tight, 'cov')).toMatchObject({
      threshold: 95,
      max_retries: 1,
      on_fail: 'fail',
      mandatory: true,
    });
  });

  it('an intake may raise a threshold but not disable, lower, replace or retarget a mandatory gate', () => {
    const policy = loadPolicy({ dir });
    const at = 'phases[0].gates';
    const refused = (entries: unknown[]) => configError(() => phaseGates(policy, 'qa', entries, at));
    expect(refused([{ id: 'no-keys', enabled: false }])).toMatch(
      /^phases\[0\]\.gates\[0\]: gate "no-keys" is mandatory \(.*universal\.yaml\): it may not be disabled/,
    );
    expect(refused([{ id: 'cov', threshold: 50 }])).toMatch(
      /its threshold may only be made stricter than >= 80 \(got 50\)/,
    );
    expect(refused([{ id: 'no-keys', glob: 'src/*.ts' }])).toMatch(/its glob may not change/);
    expect(refused([{ id: 'no-keys', mandatory: false }])).toMatch(/may not be made optional/);
    expect(refused([{ id: 'cov', max_retries: 9 }])).toMatch(/max_retries may only go down/);
    expect(refused([{ id: 'cov', on_fail: 'pause_for_approval' }])).toMatch(/on_fail may only become fail/);
    expect(refused([{ id: 'no-keys', kind: 'tool', command: ['true'] }])).toMatch(/replaced by a tool gate/);
    const ok = phaseGates(policy, 'qa', [{ id: 'cov', threshold: 99 }], at);
    expect(byId(ok.gates, 'cov')).toMatchObject({ threshold: 99 });
    expect(ok.waived).toEqual([]);
  });

  it('intake gates are one more layer on top', () => {
    const dir = policyDir({ 'default.yaml': DEFAULT });
    const gates = gatesForPhase(loadPolicy({ dir }), 'qa', [
      { id: 'coverage', threshold: 70 },
      { id: 'tests', enabled: false },
      { id: 'headers', kind: 'validator', glob: 'src/**/*.ts', must_contain: '^// SPDX' },
    ]);
    expect(gates.map((g) => g.id)).toEqual(['coverage', 'headers']);
    expect((byId(gates, 'coverage') as MetricGate).threshold).toBe(70);
  });

  it('mergeGates names the bad field under the given path', () => {
    const msg = configError(() =>
      mergeGates(
        [],
        [
          {
            id: 'cov',
            kind: 'metric',
            source: { file: 'x.json', json_path: 'a' },
            op: '>=',
            threshold: 'high',
          },
        ],
        'phases[1].gates',
      ),
    );
    expect(msg).toMatch(/^phases\[1\]\.gates\[0\]\.threshold: /);
    expect(configError(() => mergeGates([], [{ id: 'nope', threshold: 1 }]))).toMatch(
      /gates\[0\]\.kind: is required \(no earlier gate "nope" to override\)/,
    );
  });

  it('exports the gate schema for intake validation, with defaults', () => {
    const g = GateSchema.parse({ id: 't', kind: 'tool', command: ['true'] });
    expect(g).toMatchObject({ on_fail: 'fail', timeout_s: 600, expect_exit: 0, enabled: true });
  });
});

describe('bad policy files', () => {
  it('a wrong field type names the file and the field path', () => {
    const dir = policyDir({
      'default.yaml': DEFAULT,
      'clients/bad.yaml': `
phases:
  qa:
    - id: coverage
      threshold: ninety
`,
    });
    const msg = configError(() => loadPolicy({ client: 'bad', dir }));
    expect(msg).toContain(path.join(dir, 'clients', 'bad.yaml'));
    expect(msg).toMatch(/bad\.yaml: phases\.qa\[0\]\.threshold: .*expected number/);
  });

  it('an unknown field, a bad enum and a bad regex are each named', () => {
    const dir = policyDir({
      'default.yaml': `
phases:
  qa:
    - { id: a, kind: tool, command: [npm, test], timout_s: 5 }
    - { id: b, kind: tool, command: [npm, test], on_fail: explode }
    - { id: c, kind: validator, glob: 'src/**', must_contain: '([' }
    - { id: d, kind: gizmo }
    - { id: e, kind: validator, glob: '../outside/**' }
    - { id: f, kind: tool, command: [] }
    - { id: g, kind: metric, source: { command: [x] }, op: '>=', threshold: 1 }
`,
    });
    const problems = validatePolicies({ dir });
    const f = path.join(dir, 'default.yaml');
    expect(problems).toEqual(
      expect.arrayContaining([
        `${f}: phases.qa[0].timout_s: unknown field`,
        expect.stringMatching(/default\.yaml: phases\.qa\[1\]\.on_fail: /),
        `${f}: phases.qa[2].must_contain: must be a valid regular expression`,
        expect.stringMatching(/default\.yaml: phases\.qa\[3\]\.kind: /),
        `${f}: phases.qa[4].glob: must be a relative path inside the workspace`,
        expect.stringMatching(/default\.yaml: phases\.qa\[5\]\.command: must have at least the program name/),
        `${f}: phases.qa[6].source.regex: is required with command`,
      ]),
    );
    expect(problems).toHaveLength(7);
    expect(configError(() => loadPolicy({ dir }))).toMatch(
      /^.*default\.yaml: phases\.qa\[0\]\.timout_s: unknown field \(and 6 more/,
    );
  });

  it('invalid YAML names the file and the line', () => {
    const dir = policyDir({
      'universal.yaml': 'phases:\n  qa:\n    - id: a\n    - id: b\n   kind: x\n  qa: []\n',
    });
    const msg = configError(() => loadPolicy({ dir }));
    expect(msg).toMatch(
      new RegExp(`^${path.join(dir, 'universal.yaml').replace(/[.]/g, '\\.')}:\\d+:\\d+: invalid YAML: `),
    );
  });

  it('a bad top-level field and a bad phase key are named', () => {
    const dir = policyDir({ 'default.yaml': 'phase: {}\nphases:\n  "bad phase!": []\n' });
    const problems = validatePolicies({ dir });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/default\.yaml: phase: unknown field$/),
        expect.stringMatching(/default\.yaml: phases\.bad phase!: must be a phase name or "\*"/),
      ]),
    );
  });

  it('validatePolicies without a client checks every client file', () => {
    const dir = policyDir({
      'default.yaml': DEFAULT,
      'clients/good.yaml': 'phases:\n  qa:\n    - { id: coverage, threshold: 85 }\n',
      'clients/bad.yaml': 'phases:\n  qa:\n    - { id: coverage, op: "=>" }\n',
    });
    const problems = validatePolicies({ dir });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/clients\/bad\.yaml: phases\.qa\[0\]\.op: /);
  });

  it('refuses a client name that is a path', () => {
    expect(configError(() => loadPolicy({ client: '../etc' }))).toMatch(/^client: /);
  });
});
