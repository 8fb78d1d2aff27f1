import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { getPhasePreset, listPhasePresets, loadPhasePresets } from '../../config/phases';

const SIX = ['planning', 'architecture', 'data', 'development', 'qa', 'documentation'];
const ROLE: Record<string, string> = {
  planning: 'architect',
  architecture: 'architect',
  data: 'data',
  development: 'developer',
  qa: 'qa',
  documentation: 'documentarian',
};

describe('phase presets', () => {
  it('lists the six presets in run order', () => {
    expect(listPhasePresets().map((p) => p.name)).toEqual(SIX);
  });

  it('gives each preset a task prompt, cli agents of the right role with prompts, and artifacts', () => {
    for (const p of listPhasePresets()) {
      expect(p.description.length, p.name).toBeGreaterThan(10);
      expect(p.prompt.length, p.name).toBeGreaterThan(100);
      // Task-focused, not role-play.
      expect(p.prompt, p.name).not.toMatch(/\byou are\b|\bact as\b|\bimagine\b/i);
      expect(p.agents.length, p.name).toBeGreaterThan(0);
      for (const a of p.agents) {
        expect(a.backend, p.name).toBe('cli');
        expect(a.role, p.name).toBe(ROLE[p.name]);
        expect(a.id, p.name).toBe(ROLE[p.name]);
        expect(a.prompt?.length ?? 0, p.name).toBeGreaterThan(20);
      }
      expect(p.artifacts.length, p.name).toBeGreaterThan(0);
    }
  });

  it('marks only data optional and declares the expected artifacts', () => {
    expect(
      listPhasePresets()
        .filter((p) => p.optional)
        .map((p) => p.name),
    ).toEqual(['data']);
    const patterns = (name: string) => getPhasePreset(name).artifacts.map((a) => a.pattern);
    expect(patterns('planning')).toEqual(['plan.md']);
    expect(patterns('architecture')).toEqual(['ARCHITECTURE.md']);
    expect(patterns('development')).toEqual(['src/**/*']);
    expect(patterns('qa')).toEqual(['tests/report.md']);
    expect(patterns('documentation')).toContain('README.md');
    expect(getPhasePreset('planning').strategy.type).toBe('sequential');
  });

  it('rejects an unknown preset name and lists the known ones', () => {
    expect(() => getPhasePreset('deploy')).toThrow(ConfigError);
    expect(() => getPhasePreset('deploy')).toThrow(
      'unknown phase preset "deploy" (known: planning, architecture, data, development, qa, documentation)',
    );
  });
});

describe('loading preset files', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const write = (name: string, body: string) => {
    dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'presets-'));
    fs.writeFileSync(path.join(dir, name), body);
    return dir;
  };
  const valid = `name: review\norder: 1\ndescription: Review the code\nprompt: Review it.\nagents: [{ role: qa, backend: cli, prompt: Review. }]\n`;

  it('reads a valid preset with shorthand strategy and artifacts', () => {
    const d = write('review.yaml', `${valid}strategy: fallback\nartifacts: [REVIEW.md]\n`);
    const [p] = loadPhasePresets(d);
    expect(p?.strategy).toEqual({ type: 'fallback', pass_output: false, stop_on_failure: true });
    expect(p?.artifacts).toEqual([{ pattern: 'REVIEW.md', min_count: 1 }]);
  });

  it('names the file and field of a bad preset', () => {
    const d = write('review.yaml', `${valid}artifacts: ["../out"]\nextra: 1\n`);
    let message = '';
    try {
      loadPhasePresets(d);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(
      `${path.join(d, 'review.yaml')}: artifacts[0]: must be a relative path inside the workspace`,
    );
    expect(message).toContain('extra: unknown key');
  });

  it('requires the name to match the file name', () => {
    const d = write('other.yaml', valid);
    expect(() => loadPhasePresets(d)).toThrow('name: must equal the file name ("other")');
  });
});
