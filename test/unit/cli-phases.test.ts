import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const exec = promisify(execFile);
const cli = (...args: string[]) =>
  exec(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), ...args], {
    env: { ...process.env, NO_COLOR: '1' },
  });

describe('orchestrator phases', () => {
  it('lists the six presets in run order', async () => {
    const { stdout } = await cli('phases', 'list', '--json');
    const presets = JSON.parse(stdout) as { name: string; optional: boolean }[];
    expect(presets.map((p) => p.name)).toEqual([
      'planning',
      'architecture',
      'data',
      'development',
      'qa',
      'documentation',
    ]);
    expect(presets.filter((p) => p.optional).map((p) => p.name)).toEqual(['data']);
  });

  it("shows a phase's prompt, and names the known presets for an unknown one", async () => {
    const { stdout } = await cli('phases', 'show', 'qa');
    expect(stdout).toMatch(/^qa: /);
    expect(stdout).toContain('acceptance criteria');
    const err = await cli('phases', 'show', 'deploy').catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 2 });
    expect((err as { stderr: string }).stderr).toContain(
      'unknown phase preset "deploy" (known: planning, architecture',
    );
  });
});
