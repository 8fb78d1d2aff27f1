import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { loadIntake, parseIntake } from '../../config/intake';
import { getPhasePreset } from '../../config/phases';
import { ProjectSpecSchema } from '../../src/shared/spec';

const PRESET_ORDER = ['planning', 'architecture', 'data', 'development', 'qa', 'documentation'];

const MINIMAL = `project: { name: demo }
phases:
  - name: planning
    agents: [{ role: architect, backend: script, command: ["sh", "-c", "echo '# plan' > plan.md"] }]
    artifacts: ["plan.md"]
  - name: development
    agents: [{ role: developer, backend: script, command: ["sh", "-c", "mkdir -p src && echo 'x' > src/a.txt"] }]
    artifacts: ["src/*.txt"]
`;

/** The ConfigError message parseIntake throws for `yaml`, named `bad.yaml`. */
function rejection(yaml: string): string {
  try {
    parseIntake(yaml, 'bad.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('intake was accepted');
}

const agent = (role: string, extra = '') => `{ role: ${role}, backend: script, command: ["true"]${extra} }`;

describe('intake: accepted files', () => {
  it('accepts the minimal intake and fills the gaps from the presets', () => {
    const spec = parseIntake(MINIMAL, 'minimal.yaml');
    expect(ProjectSpecSchema.parse(spec)).toEqual(spec);
    expect(spec.project).toEqual({ name: 'demo' });
    expect(spec.phases.map((p) => p.name)).toEqual(['planning', 'development']);
    const [planning, development] = spec.phases;
    expect(planning?.agents).toEqual([
      {
        id: 'architect',
        role: 'architect',
        backend: 'script',
        command: ['sh', '-c', "echo '# plan' > plan.md"],
      },
    ]);
    expect(planning?.artifacts).toEqual([{ pattern: 'plan.md', min_count: 1 }]);
    expect(development?.artifacts).toEqual([{ pattern: 'src/*.txt', min_count: 1 }]);
    // Not set in the intake, so inherited from the preset.
    expect(planning?.prompt).toBe(getPhasePreset('planning').prompt);
    expect(planning?.strategy.type).toBe('sequential');
    expect(spec.constraints.on_budget_exceeded).toBe('pause');
  });

  it("accepts the v2 architecture document's own intake as written", () => {
    const spec = parseIntake(
      `project: { name: "Customer Analytics Platform", client: "acme-corp" }
requirements: ["Build demand forecasting model", "Create executive dashboard", "Document API endpoints"]
phases: [planning, architecture, data, development, qa, documentation]
constraints: { timeline: "2 weeks", budget_tokens: 2000000 }
`,
      'v2.yaml',
    );
    expect(spec.phases.map((p) => p.name)).toEqual(PRESET_ORDER);
    expect(spec.constraints).toMatchObject({ timeline: '2 weeks', budget_tokens: 2000000 });
  });

  it('expands preset names into the preset phases', () => {
    const spec = parseIntake(
      `project: { name: "Customer Analytics Platform", client: acme-corp }
requirements: ["Build demand forecasting model", "Create executive dashboard"]
phases: [planning, architecture, data, development, qa, documentation]
constraints: { budget_tokens: 2000000, budget_usd: 50 }
`,
      'x.yaml',
    );
    expect(spec.phases.map((p) => p.name)).toEqual([
      'planning',
      'architecture',
      'data',
      'development',
      'qa',
      'documentation',
    ]);
    expect(spec.phases.map((p) => p.agents[0]?.role)).toEqual([
      'architect',
      'architect',
      'data',
      'developer',
      'qa',
      'documentarian',
    ]);
    expect(spec.phases.every((p) => p.agents.every((a) => a.backend === 'cli'))).toBe(true);
    expect(spec.phases.find((p) => p.name === 'data')?.optional).toBe(true);
    expect(spec.constraints).toEqual({ budget_tokens: 2000000, budget_usd: 50, on_budget_exceeded: 'pause' });
    expect(spec.requirements).toHaveLength(2);
  });

  it('lets a phase object override some preset fields and keep the rest', () => {
    const spec = parseIntake(
      `project: { name: p }
phases:
  - { name: development, artifacts: ["lib/**", { pattern: "bin/*", min_count: 0 }], strategy: { type: batched, batch_size: 2 } }
  - { name: data, skip: true }
`,
    );
    const [dev, data] = spec.phases;
    expect(dev?.agents).toEqual(getPhasePreset('development').agents);
    expect(dev?.artifacts).toEqual([
      { pattern: 'lib/**', min_count: 1 },
      { pattern: 'bin/*', min_count: 0 },
    ]);
    expect(dev?.strategy).toEqual({
      type: 'batched',
      batch_size: 2,
      pass_output: false,
      stop_on_failure: true,
    });
    expect(data).toMatchObject({ name: 'data', optional: true, skip: true });
  });

  it('accepts a custom phase that lists its agents and a strategy shorthand', () => {
    const spec = parseIntake(
      `project: { name: p }\nphases: [{ name: security-review, strategy: fallback, agents: [${agent('auditor')}] }]`,
    );
    expect(spec.phases[0]).toMatchObject({
      name: 'security-review',
      optional: false,
      prompt: '',
      artifacts: [],
    });
    expect(spec.phases[0]?.strategy.type).toBe('fallback');
  });

  it('assigns default agent ids: role, role-2, … around explicit ids', () => {
    const spec = parseIntake(
      `project: { name: p }\nphases: [{ name: qa, agents: [${agent('QA Engineer')}, ${agent('dev')}, ${agent('dev')}, ${agent('x', ', id: dev-2')}, ${agent('dev')}] }]`,
    );
    expect(spec.phases[0]?.agents.map((a) => a.id)).toEqual([
      'qa-engineer',
      'dev',
      'dev-3',
      'dev-2',
      'dev-4',
    ]);
  });

  it('loads the example intakes', () => {
    const root = path.join(__dirname, '../../examples');
    expect(loadIntake(path.join(root, 'minimal.yaml'))).toEqual(parseIntake(MINIMAL));
    for (const file of ['demo.yaml', 'rehearsal.yaml']) {
      const spec = loadIntake(path.join(root, file));
      expect(
        spec.phases.map((p) => p.name),
        file,
      ).toEqual(['planning', 'architecture', 'data', 'development', 'qa', 'documentation']);
      expect(
        spec.phases.every((p) => p.artifacts.length > 0),
        file,
      ).toBe(true);
    }
  });
});

describe('intake: rejections name the file and the field', () => {
  it('malformed YAML, with line and column', () => {
    expect(rejection('project: { name: demo\nphases: []\n')).toMatch(/^bad\.yaml:2:1: invalid YAML: /);
    expect(rejection('project:\n  name: demo\n   bad: 1\n')).toMatch(
      /^bad\.yaml:2:9: invalid YAML: Nested mappings/,
    );
    expect(rejection('project: { name: a }\nproject: { name: b }\n')).toMatch(
      /^bad\.yaml:2:1: invalid YAML: Map keys must be unique/,
    );
  });

  it('an empty file, or one that is not a mapping', () => {
    expect(rejection('')).toBe('bad.yaml: is empty: expected a mapping with project and phases');
    expect(rejection('- planning\n')).toContain('bad.yaml: must be a mapping with project and phases');
  });

  it('an unknown phase preset, listing the known ones', () => {
    expect(rejection('project: { name: p }\nphases: [planning, deploy]')).toBe(
      'bad.yaml: phases[1]: unknown phase preset "deploy" (known: planning, architecture, data, development, qa, documentation)',
    );
  });

  it('an artifact glob escaping the workspace', () => {
    const msg = rejection(
      `project: { name: p }\nphases: [planning, qa, { name: development, artifacts: ["../x", { pattern: /abs }, "src/../../y"] }]`,
    );
    expect(msg.split('\n')).toEqual([
      'bad.yaml: phases[2].artifacts[0]: must be a relative path inside the workspace',
      'bad.yaml: phases[2].artifacts[1].pattern: must be a relative path inside the workspace',
      'bad.yaml: phases[2].artifacts[2]: must be a relative path inside the workspace',
    ]);
  });

  it('an empty phase list, or none at all', () => {
    expect(rejection('project: { name: p }\nphases: []')).toBe(
      'bad.yaml: phases: must list at least one phase',
    );
    expect(rejection('project: { name: p }')).toBe('bad.yaml: phases: is required');
  });

  it('duplicate phase names', () => {
    expect(rejection('project: { name: p }\nphases: [planning, qa, planning]')).toBe(
      'bad.yaml: phases[2]: duplicate phase "planning" (also phases[0])',
    );
    expect(rejection(`project: { name: p }\nphases: [qa, { name: qa, agents: [${agent('a')}] }]`)).toBe(
      'bad.yaml: phases[1].name: duplicate phase "qa" (also phases[0])',
    );
  });

  it('duplicate agent ids within a phase', () => {
    expect(
      rejection(
        `project: { name: p }\nphases: [{ name: qa, agents: [${agent('a', ', id: x')}, ${agent('b', ', id: x')}] }]`,
      ),
    ).toBe('bad.yaml: phases[0].agents[1].id: duplicate agent id "x" (also agents[0])');
  });

  it('skip: true on a phase that is not optional', () => {
    expect(rejection('project: { name: p }\nphases: [planning, { name: qa, skip: true }]')).toBe(
      'bad.yaml: phases[1].skip: only optional phases can be skipped; "qa" is not optional (set optional: true to allow it)',
    );
    // …and accepted once the phase is declared optional.
    const spec = parseIntake(
      'project: { name: p }\nphases: [planning, { name: qa, optional: true, skip: true }]',
    );
    expect(spec.phases[1]).toMatchObject({ optional: true, skip: true });
  });

  it('unknown keys, at the top level and nested', () => {
    expect(rejection('project: { name: p }\nphases: [planning]\nbudget: 5')).toBe(
      'bad.yaml: budget: unknown key (expected one of: project, requirements, phases, constraints)',
    );
    const msg = rejection(
      `project: { name: p, owner: me }\nphases: [{ name: qa, agents: [{ role: a, backend: script, comand: [x] }] }]`,
    );
    expect(msg).toContain('bad.yaml: project.owner: unknown key (expected one of: name, client)');
    expect(msg).toContain(
      'bad.yaml: phases[0].agents[0].comand: unknown key (expected one of: id, role, backend,',
    );
    expect(msg).toContain('bad.yaml: phases[0].agents[0].command: is required for backend "script"');
  });

  it('bad field types and values', () => {
    expect(rejection('project: { name: p }\nphases: [{ name: qa, strategy: paralel }]')).toContain(
      'bad.yaml: phases[0].strategy: Invalid option: expected one of "parallel"|"sequential"|"fallback"|"batched"',
    );
    expect(rejection('project: { name: p }\nphases: [planning, 5]')).toBe(
      'bad.yaml: phases[1]: expected string or object',
    );
    expect(rejection('project: { name: p }\nphases: [{ name: custom }]')).toContain(
      'bad.yaml: phases[0].agents: is required: "custom" is not a phase preset',
    );
    expect(rejection('project: { name: p }\nphases: [qa]\nconstraints: { budget_usd: -1 }')).toMatch(
      /^bad\.yaml: constraints\.budget_usd: /,
    );
    expect(
      rejection('project: { name: p }\nphases: [qa]\nconstraints: { agent_heartbeat_timeout_s: 3 }'),
    ).toMatch(/^bad\.yaml: constraints\.agent_heartbeat_timeout_s: /);
  });

  it("takes the run's agent-turn heartbeat timeout (seconds) in constraints", () => {
    const spec = parseIntake(
      'project: { name: p }\nphases: [qa]\nconstraints: { agent_heartbeat_timeout_s: 10 }',
    );
    expect(spec.constraints.agent_heartbeat_timeout_s).toBe(10);
    expect(
      parseIntake('project: { name: p }\nphases: [qa]').constraints.agent_heartbeat_timeout_s,
    ).toBeUndefined();
  });

  it('loadIntake names the file, also when it is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intake-'));
    try {
      const file = path.join(dir, 'intake.yaml');
      expect(() => loadIntake(file)).toThrow(`${file}: file not found`);
      fs.writeFileSync(file, 'project: { name: p }\nphases: [planning, deploy]\n');
      expect(() => loadIntake(file)).toThrow(`${file}: phases[1]: unknown phase preset "deploy"`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
