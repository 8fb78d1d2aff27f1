/**
 * The CLI's own surface: `--version`, exit code 2 for usage errors, and completion scripts that a real
 * bash completes with (the script is sourced and its function called as bash's completion would).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const exec = promisify(execFile);
const cli = (...args: string[]) =>
  exec(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), ...args], {
    env: { ...process.env, NO_COLOR: '1' },
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );

/** What bash offers after `words` (the last one is the word being completed). */
async function complete(script: string, words: string[]): Promise<string[]> {
  const probe = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_orchestrator_complete
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const { stdout } = await exec('bash', ['-c', probe]);
  return stdout.split('\n').filter(Boolean);
}

// Each case starts the CLI several times; under a loaded suite that has come near the 60 s default.
describe('the CLI surface', { timeout: 180_000 }, () => {
  it('prints the package version', async () => {
    const version = (
      JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag);
      expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
    }
  });

  it("prints a workflow input's JSON Schema; an unknown workflow is a usage error naming the choices", async () => {
    const r = await cli('schema', 'projectWorkflow');
    expect(r.code, r.stderr).toBe(0);
    const schema = JSON.parse(r.stdout) as { type: string; required: string[]; properties: object };
    expect(schema.type).toBe('object');
    expect(schema.required.sort()).toEqual(['outputsDir', 'runId', 'spec', 'workspace']);
    // Fields the workflow fills in by default are optional for the sender.
    const phase = JSON.stringify(schema.properties);
    expect(phase).toContain('"stop_on_failure"');
    const team = await cli('schema', 'teamWorkflow');
    expect(team.code, team.stderr).toBe(0);
    expect(JSON.parse(team.stdout)).toHaveProperty('properties.runId');
    const bad = await cli('schema', 'nope');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown workflow "nope" (one of: projectWorkflow, teamWorkflow)');
  });

  it('exits 2 on usage errors, 0 on help', async () => {
    expect((await cli('run', 'status', '--bogus')).code).toBe(2);
    expect((await cli('no-such-command')).code).toBe(2);
    expect((await cli('checkpoint', 'show')).code).toBe(2);
    const shell = await cli('completion', 'fish');
    expect(shell.code).toBe(2);
    expect(shell.stderr).toContain('unknown shell "fish" (one of: bash, zsh)');
    expect((await cli('--help')).code).toBe(0);
  });

  it('completes commands, subcommands and options in bash; zsh loads the same function', async () => {
    const bash = await cli('completion', 'bash');
    expect(bash.code).toBe(0);
    expect(await complete(bash.stdout, ['orchestrator', 'che'])).toEqual(['checkpoint']);
    expect(await complete(bash.stdout, ['orchestrator', 'checkpoint', 'r'])).toEqual(['rollback']);
    expect(
      await complete(bash.stdout, ['orchestrator', 'checkpoint', 'rollback', 'R1', 'CP1', '--re']),
    ).toEqual(['--reason']);
    expect(await complete(bash.stdout, ['orchestrator', 'team', 'task', ''])).toEqual(['done', '--help']);
    const zsh = await cli('completion', 'zsh');
    expect(zsh.stdout.split('\n').slice(0, 2)).toEqual([
      '#compdef orchestrator',
      'autoload -U +X bashcompinit && bashcompinit',
    ]);
    expect(zsh.stdout).toContain(bash.stdout.slice(bash.stdout.indexOf('\n') + 1));
  });
});
