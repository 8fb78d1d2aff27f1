/**
 * preflight fills model agents from their role's agent definition, subagents included (they reach
 * `claude --agents`; the scenario test checks the CLI's init line).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/env';
import { preflight } from '../../src/preflight';
import { ProjectSpecSchema } from '../../src/shared/spec';

const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });

function spec(agent: Record<string, unknown>) {
  return ProjectSpecSchema.parse({
    project: { name: 'p' },
    phases: [{ name: 'development', agents: [{ role: 'developer', backend: 'cli', ...agent }] }],
  });
}

describe('preflight', () => {
  it("gives a cli agent its definition's model, max_turns and subagents", async () => {
    const out = await preflight(spec({ prompt: 'x' }), { config, rehearse: true });
    const agent = out.phases[0]!.agents[0]!;
    expect(agent).toMatchObject({ model: 'sonnet', max_turns: 50 });
    expect(agent.subagents).toEqual({
      'test-runner': {
        description: expect.stringMatching(/Runs the project's test suite/) as string,
        prompt: expect.stringMatching(/Run the project's tests/) as string,
        tools: ['Read', 'Bash'],
        model: 'haiku',
      },
    });
  });

  it("keeps the intake's own subagents", async () => {
    const own = { scout: { description: 'looks', prompt: 'look around' } };
    const out = await preflight(spec({ prompt: 'x', subagents: own }), { config, rehearse: true });
    expect(out.phases[0]!.agents[0]!.subagents).toEqual(own);
  });
});
