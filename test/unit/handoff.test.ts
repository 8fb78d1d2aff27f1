/**
 * Context hand-off decisions without a server: a phase's summary, which earlier phases a phase receives
 * (`summaries_from`), the hand-off section (latest completed attempt, summaries not transcripts, a file
 * reference when results were carried away), the retry note, and the intake's checks of `summaries_from`.
 */
import { describe, expect, it } from 'vitest';
import { parseIntake } from '../../config/intake';
import {
  HANDOFF_PHASE_CHARS,
  handoffSection,
  handoffSources,
  phaseSummary,
  retryNote,
} from '../../src/shared/handoff';
import type { AgentResult, PhaseResult } from '../../src/shared/run';
import { compactSpec, ProjectSpecSchema } from '../../src/shared/spec';

const agent = (id: string, summary: string, status: AgentResult['status'] = 'completed') => ({
  agentId: id,
  role: 'dev',
  status,
  summary,
});
const row = (
  index: number,
  attempt: number,
  status: PhaseResult['status'],
  agents: ReturnType<typeof agent>[],
) => ({ phase: `p${index}`, index, attempt, status, agents: agents as AgentResult[] });

describe('phase summaries', () => {
  it("joins the completed agents' summaries under the phase's name", () => {
    expect(phaseSummary('qa', 2, [agent('a', 'did A'), agent('b', 'broke', 'failed'), agent('c', ' ')])).toBe(
      '# Summary of phase "qa" (attempt 2)\n\n## a (dev)\n\ndid A\n\n## c (dev)\n\n(no summary)\n',
    );
  });

  it('hands over every earlier phase by default, or the ones summaries_from names, in phase order', () => {
    const names = ['a', 'b', 'c', 'd'];
    expect(handoffSources(names, 3, undefined)).toEqual([0, 1, 2]);
    expect(handoffSources(names, 3, ['c', 'a'])).toEqual([0, 2]);
    expect(handoffSources(names, 3, [])).toEqual([]);
    expect(handoffSources(names, 0, undefined)).toEqual([]);
  });

  it("uses each source's latest completed attempt, refers to the file when agents were carried away, cuts long ones", () => {
    const results = [
      row(0, 1, 'completed', [agent('x', 'first try')]),
      row(0, 2, 'completed', [agent('x', 'second try')]),
      row(1, 1, 'failed', [agent('y', 'FAILED-WORK')]),
      row(2, 1, 'completed', []),
      row(3, 1, 'completed', [agent('z', 'y'.repeat(HANDOFF_PHASE_CHARS * 2))]),
    ];
    const s = handoffSection(results, [0, 1, 2, 3], (p) => `/out/run/${p}/summary.md`);
    expect(s).toMatch(/^Context from earlier phases/);
    expect(s).toContain('second try');
    expect(s).not.toContain('first try');
    expect(s).not.toContain('FAILED-WORK');
    expect(s).toContain('# Summary of phase "p2": see /out/run/p2/summary.md');
    expect(s).toContain('[…cut]');
    expect(s.length).toBeLessThan(HANDOFF_PHASE_CHARS * 2);
    expect(handoffSection(results, [], () => '')).toBe('');
  });

  it('tells a retried phase which gates failed, and nothing when the last attempt did not fail on gates', () => {
    const gate = 'gate "lint" (tool) failed: exit 1; evidence: {"output":"3 errors"}';
    expect(retryNote({ attempt: 1, errors: [gate] })).toBe(
      `This phase is running again: attempt 1 failed these gates. Fix what they report before anything else.\n- ${gate}`,
    );
    expect(retryNote({ attempt: 1, errors: ['agent dev: exited 1'] })).toBe('');
    expect(retryNote(undefined)).toBe('');
  });
});

describe('summaries_from in the intake', () => {
  const intake = (from: string) =>
    [
      'project: { name: p }',
      'phases:',
      '  - { name: one, agents: [{ role: a, backend: script, command: ["true"] }] }',
      `  - { name: two, summaries_from: ${from}, agents: [{ role: a, backend: script, command: ["true"] }] }`,
    ].join('\n');

  it('accepts earlier phases and keeps them through compaction', () => {
    const spec = parseIntake(intake('[one]'), 'i.yaml');
    expect(spec.phases[1]!.summaries_from).toEqual(['one']);
    expect(ProjectSpecSchema.parse(compactSpec(spec)).phases[1]!.summaries_from).toEqual(['one']);
  });

  it('refuses a phase that is not earlier, naming the field', () => {
    expect(() => parseIntake(intake('[two]'), 'i.yaml')).toThrow(
      'i.yaml: phases[1].summaries_from[0]: "two" is not an earlier phase (earlier: one)',
    );
  });
});
