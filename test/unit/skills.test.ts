/**
 * The skills registry without a server: trigger matching, which skills an agent gets and why, how the
 * methodology reads in the prompt, file-and-field errors for bad skill files, the shipped skills, and
 * preflight applying them (role-listed, intake-listed, triggered).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/env';
import { loadSkillFile, loadSkills, type Skill } from '../../config/skills';
import { preflight } from '../../src/preflight';
import { matchSkills, matchingTrigger, methodologySection, selectSkills } from '../../src/shared/skills';
import { ProjectSpecSchema } from '../../src/shared/spec';
import { runCli } from '../harness/cli';

const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });

const forecasting: Skill = {
  id: 'forecasting',
  version: '1.0',
  triggers: ['forecast', 'predict', 'time series'],
  methodology: ['Hold out the latest period.', 'Fit a naive baseline.'],
  source: '/x/forecasting.yaml',
};
const docs: Skill = {
  id: 'documentation',
  version: '2',
  triggers: ['document'],
  methodology: ['Write the quick start.'],
  source: '/x/documentation.yaml',
};

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'orch-skills-'));
}

describe('trigger matching', () => {
  it('matches "forecast demand" and not "build a dashboard"', () => {
    expect(matchSkills([forecasting, docs], 'forecast demand').map((m) => m.skill.id)).toEqual([
      'forecasting',
    ]);
    expect(matchSkills([forecasting, docs], 'build a dashboard')).toEqual([]);
  });

  it('matches at word starts, case-insensitively, into longer words; multi-word triggers across - and _', () => {
    expect(matchingTrigger(forecasting.triggers, 'Build demand FORECASTING model')).toBe('forecast');
    expect(matchingTrigger(forecasting.triggers, 'a predictive score')).toBe('predict');
    expect(matchingTrigger(forecasting.triggers, 'a time-series store')).toBe('time series');
    expect(matchingTrigger(forecasting.triggers, 'time_series')).toBe('time series');
    // Not inside a word, and not a different phrase.
    expect(matchingTrigger(forecasting.triggers, 'unpredictable')).toBeUndefined();
    expect(matchingTrigger(forecasting.triggers, 'time and series')).toBeUndefined();
    // Regex characters in a trigger are literal.
    expect(matchingTrigger(['c++'], 'write c++ code')).toBe('c++');
    expect(matchingTrigger(['c++'], 'write cxx code')).toBeUndefined();
  });
});

describe('selectSkills', () => {
  it('applies listed skills first, then task triggers, then requirement triggers, each once with its reason', () => {
    const r = selectSkills([forecasting, docs], { role: ['documentation'] }, 'forecast sales', [
      'Document the API',
      'Predict churn',
    ]);
    expect(r.unknown).toEqual([]);
    expect(r.applied.map((a) => [a.id, a.because])).toEqual([
      ['documentation', 'role'],
      ['forecasting', 'trigger "forecast" in task'],
    ]);
    expect(r.applied[1]!.steps).toEqual(forecasting.methodology);
  });

  it('reports unknown listed ids with where they were listed', () => {
    const r = selectSkills([forecasting], { role: ['nope'], agent: ['forecasting', 'also-nope'] }, '', []);
    expect(r.unknown).toEqual([
      { from: 'role', id: 'nope' },
      { from: 'agent', id: 'also-nope' },
    ]);
    expect(r.applied.map((a) => a.because)).toEqual(['agent']);
  });

  it('renders methodology as numbered steps per skill', () => {
    const { applied } = selectSkills([forecasting], {}, 'predict', []);
    expect(methodologySection(applied)).toBe(
      'Methodology: skill forecasting (version 1.0). Follow these steps in order:\n' +
        '1. Hold out the latest period.\n2. Fit a naive baseline.',
    );
    expect(methodologySection([])).toBe('');
  });
});

describe('skill files', () => {
  it('ships forecasting, REST API, test writing, documentation and data pipeline skills, all valid', () => {
    const ids = loadSkills().map((s) => s.id);
    expect(ids).toEqual(
      expect.arrayContaining(['forecasting', 'rest-api', 'test-writing', 'documentation', 'data-pipeline']),
    );
    const f = loadSkills().find((s) => s.id === 'forecasting')!;
    expect(f.triggers).toEqual(['forecast', 'predict', 'time series']);
    expect(f.methodology.length).toBeGreaterThanOrEqual(4);
  });

  it('a bad skill file names its file and field', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'version: "1"\ntriggers: []\nmethodology: ["x"]\ncolour: red\n');
    expect(() => loadSkillFile(file)).toThrow(`${file}: triggers: must list at least one trigger`);
    expect(() => loadSkillFile(file)).toThrow(`${file}: colour: unknown key`);
    fs.writeFileSync(file, 'version: "1"\ntriggers: [x]\nmethodology: [{ step: "" }]\n');
    expect(() => loadSkillFile(file)).toThrow(`${file}: methodology[0].step: must not be empty`);
    fs.writeFileSync(file, 'id: other\nversion: 1\ntriggers: [x]\nmethodology: [a]\n');
    expect(() => loadSkillFile(file)).toThrow(`${file}: id: must equal the file name ("bad")`);
    fs.writeFileSync(file, 'triggers: [x]\nmethodology: [a]\n');
    expect(() => loadSkillFile(file)).toThrow(`${file}: version: is required`);
  });

  it("an intake's skills/ folder adds skills and replaces shipped ones by id; version 1.0 stays text", () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'skills'));
    fs.writeFileSync(
      path.join(dir, 'skills', 'forecasting.yaml'),
      'version: 2.0\ntriggers: [forecast]\nmethodology: [{ step: Mine, details: ours }]\n',
    );
    const f = loadSkills({ intakeDir: dir }).find((s) => s.id === 'forecasting')!;
    expect(f.version).toBe('2');
    expect(f.methodology).toEqual(['Mine: ours']);
  });
});

describe('preflight applies skills', () => {
  const spec = (agent: Record<string, unknown>, requirements: string[] = []) =>
    ProjectSpecSchema.parse({
      project: { name: 'p' },
      requirements,
      phases: [{ name: 'development', agents: [{ role: 'developer', backend: 'cli', ...agent }] }],
    });

  it('triggered by the task, listed by the intake, or named wrongly (file and field)', async () => {
    const out = await preflight(spec({ prompt: 'Forecast demand for Q3', skills: ['documentation'] }), {
      config,
      rehearse: true,
      skills: [forecasting, docs],
    });
    expect(out.phases[0]!.agents[0]!.applied_skills).toEqual([
      { id: 'documentation', version: '2', steps: docs.methodology, because: 'agent' },
      {
        id: 'forecasting',
        version: '1.0',
        steps: forecasting.methodology,
        because: 'trigger "forecast" in task',
      },
    ]);
    const plain = await preflight(spec({ prompt: 'build a dashboard' }), {
      config,
      rehearse: true,
      skills: [forecasting, docs],
    });
    expect(plain.phases[0]!.agents[0]!.applied_skills).toBeUndefined();
    await expect(
      preflight(spec({ prompt: 'x', skills: ['nope'] }), { config, rehearse: true, skills: [forecasting] }),
    ).rejects.toThrow('phases[0].agents[0].skills: unknown skill "nope" (known: forecasting)');
  });

  it("a bad skill file in the intake's folder stops the run before it starts, naming file and field", async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'skills'));
    const file = path.join(dir, 'skills', 'broken.yaml');
    fs.writeFileSync(file, 'version: "1"\ntriggers: [x]\nmethodology: "not a list"\n');
    await expect(
      preflight(spec({ prompt: 'x' }), { config, rehearse: true, intakeDir: dir }),
    ).rejects.toThrow(`${file}: methodology: `);
  });
});

describe('orchestrator skills', () => {
  it('match finds forecasting for "forecast demand" and nothing for "build a dashboard"; list and show', async () => {
    const hit = await runCli(['skills', 'match', 'forecast demand']);
    expect(hit.stdout).toBe('forecasting 1.0 (trigger "forecast")\n');
    expect(hit.code).toBe(0);
    const miss = await runCli(['skills', 'match', 'build a dashboard']);
    expect(miss.stdout).toBe('no skill matches\n');
    expect(miss.code).toBe(1);
    const list = await runCli(['skills', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((s) => s.id)).toContain('rest-api');
    const show = await runCli(['skills', 'show', 'forecasting']);
    expect(show.stdout).toMatch(/^ {2}1\. Profile the history/m);
    const unknown = await runCli(['skills', 'show', 'nope']);
    expect(unknown.stderr).toMatch(/unknown skill "nope" \(known: data-pipeline, /);
    expect(unknown.code).not.toBe(0);
  }, 120_000);
});
