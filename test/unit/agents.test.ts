/**
 * Agent presets: the eight shipped YAML files, and what a broken file is told.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getAgentPreset, listAgentPresets, loadAgentFile, subagentsForCli } from '../../config/agents';
import { ConfigError } from '../../config/errors';
import { buildClaudeArgs, CliSubagentSchema } from '../../src/claude/args';

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-agents-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('shipped presets', () => {
  it('are the eight roles, all valid', () => {
    const presets = listAgentPresets();
    expect(presets.map((p) => p.id)).toEqual([
      'architect',
      'consensus',
      'data',
      'developer',
      'documentarian',
      'qa',
      'reviewer',
      'steward',
    ]);
    for (const p of presets) {
      expect(p.system_prompt.length).toBeGreaterThan(100);
      expect(p.description).not.toBe('');
      // Plain, task-focused prompts: no persona framing.
      expect(p.system_prompt).not.toMatch(/\byou are (a|an|the)\b|world-class|expert in/i);
    }
  });

  it('resolves system_prompt_file relative to the YAML', () => {
    const dev = getAgentPreset('developer');
    expect(dev.system_prompt).toMatch(/^Implement the task you are given/);
    expect(dev.subagents.map((s) => s.id)).toEqual(['test-runner']);
  });

  it('gives subagents in the shape of the CLI --agents flag', () => {
    const agents = subagentsForCli(getAgentPreset('reviewer').subagents);
    expect(Object.keys(agents)).toEqual(['security-checker']);
    expect(CliSubagentSchema.parse(agents['security-checker'])).toMatchObject({
      tools: ['Read'],
      model: 'sonnet',
    });
    const args = buildClaudeArgs({ sessionId: 'S', mode: 'new', agents });
    expect(JSON.parse(args[args.indexOf('--agents') + 1]!)).toEqual(agents);
  });

  it('names the known presets for an unknown id', () => {
    expect(errorOf(() => getAgentPreset('wizard')).message).toMatch(
      /unknown agent preset "wizard" \(known: architect, .*steward\)/,
    );
  });
});

describe('loadAgentFile', () => {
  const good = `role: tester
description: Tests things.
model: haiku
max_turns: 5
allowed_tools: [Read, Bash]
permission_mode: acceptEdits
system_prompt: Run the tests.
subagents:
  - id: helper
    description: Helps.
    prompt: Help with the tests.
    model: claude-haiku-4-5
`;

  it('loads a good file with defaults', () => {
    const p = loadAgentFile(write('tester.yaml', good));
    expect(p).toMatchObject({
      id: 'tester',
      role: 'tester',
      backend: 'cli',
      model: 'haiku',
      max_turns: 5,
      allowed_tools: ['Read', 'Bash'],
      system_prompt: 'Run the tests.',
      source: path.join(dir, 'tester.yaml'),
    });
    expect(p.subagents).toEqual([
      { id: 'helper', description: 'Helps.', prompt: 'Help with the tests.', model: 'claude-haiku-4-5' },
    ]);
  });

  it('names the file and the field of a bad value', () => {
    const file = write('bad.yaml', good.replace('max_turns: 5', 'max_turns: many'));
    expect(errorOf(() => loadAgentFile(file)).message).toBe(
      `${file}: max_turns: Invalid input: expected number, received string`,
    );
  });

  it('names an unknown (misspelt) field', () => {
    const file = write('typo.yaml', `${good}permision_mode: plan\n`);
    expect(errorOf(() => loadAgentFile(file)).message).toMatch(
      new RegExp(`^${file}: permision_mode: unknown key`),
    );
  });

  it('rejects an unknown model, listing the known ones', () => {
    const file = write('gpt.yaml', good.replace('model: haiku', 'model: gpt-4'));
    const msg = errorOf(() => loadAgentFile(file)).message;
    expect(msg).toMatch(
      new RegExp(`^${file}: model: unknown model "gpt-4" \\(known: opus, sonnet, haiku, claude-opus-5-5`),
    );
  });

  it('checks subagent models too', () => {
    const file = write('subgpt.yaml', good.replace('model: claude-haiku-4-5', 'model: gpt-4'));
    expect(errorOf(() => loadAgentFile(file)).message).toMatch(
      /: subagents\[0\]\.model: unknown model "gpt-4"/,
    );
  });

  it('requires exactly one of system_prompt and system_prompt_file', () => {
    const both = write('both.yaml', `${good}system_prompt_file: p.md\n`);
    expect(errorOf(() => loadAgentFile(both)).message).toMatch(/: system_prompt: give exactly one of/);
    const neither = write('neither.yaml', good.replace('system_prompt: Run the tests.\n', ''));
    expect(errorOf(() => loadAgentFile(neither)).message).toMatch(/: system_prompt: give exactly one of/);
  });

  it('names a missing prompt file', () => {
    const file = write(
      'nofile.yaml',
      good.replace('system_prompt: Run the tests.', 'system_prompt_file: prompts/missing.md'),
    );
    expect(errorOf(() => loadAgentFile(file)).message).toMatch(
      new RegExp(
        `^${file}: system_prompt_file: cannot read ${path.join(dir, 'prompts/missing.md')} \\(ENOENT\\)`,
      ),
    );
  });

  it('requires the id to match the file name', () => {
    const file = write('alpha.yaml', `id: beta\n${good}`);
    expect(errorOf(() => loadAgentFile(file)).message).toBe(
      `${file}: id: must equal the file name ("alpha")`,
    );
  });

  it('reports invalid YAML with its position', () => {
    const file = write('broken.yaml', 'role: [unclosed\n');
    expect(errorOf(() => loadAgentFile(file)).message).toMatch(
      new RegExp(`^${file}:\\d+:\\d+: invalid YAML`),
    );
  });

  it('rejects duplicate subagent ids', () => {
    const file = write('dups.yaml', `${good}  - id: helper\n    description: Again.\n    prompt: Again.\n`);
    expect(errorOf(() => loadAgentFile(file)).message).toMatch(
      /subagents\[1\]\.id: duplicate subagent id "helper"/,
    );
  });
});
