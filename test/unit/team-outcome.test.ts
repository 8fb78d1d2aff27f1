import { describe, expect, it } from 'vitest';
import { NAMED_IN_MESSAGE, teamVerdict } from '../../src/shared/team-outcome';
import type { TeamAgentRow } from '../../src/shared/team';

type Row = Pick<TeamAgentRow, 'id' | 'name' | 'state' | 'error' | 'errorType'>;
const row = (id: string, state: Row['state'], errorType?: string): Row => ({
  id,
  name: `${id}-name`,
  state,
  ...(errorType ? { errorType, error: `${id} broke` } : {}),
});

describe('teamVerdict', () => {
  it('a team whose agents all failed has failed, naming each with its failure type', () => {
    const v = teamVerdict([
      row('manager-1', 'failed', 'AgentExited'),
      row('architect-1', 'failed', 'CliError'),
    ]);
    expect(v?.message).toBe(
      'team failed: all 2 agents failed: manager-1 (AgentExited: manager-1 broke), architect-1 (CliError: architect-1 broke)',
    );
    expect(v?.failed.map((f) => [f.id, f.errorType])).toEqual([
      ['manager-1', 'AgentExited'],
      ['architect-1', 'CliError'],
    ]);
  });

  it('one completed or stopped agent means the team did not fail (policy continue)', () => {
    expect(teamVerdict([row('a', 'failed', 'AgentExited'), row('b', 'completed')])).toBeUndefined();
    expect(teamVerdict([row('a', 'failed', 'AgentExited'), row('b', 'stopped')])).toBeUndefined();
    expect(teamVerdict([])).toBeUndefined();
  });

  it('under on_agent_failure: stop the agent that stopped the team is named, whatever the others did', () => {
    const v = teamVerdict(
      [row('a', 'completed'), row('b', 'failed', 'TasksNotCompleted'), row('c', 'stopped')],
      'b',
    );
    expect(v?.message).toMatch(/^team failed: agent b \(TasksNotCompleted: b broke\) failed and the policy/);
    expect(v?.failed.map((f) => f.id)).toEqual(['b']);
  });

  it('a huge team: the message names the first few and counts the rest; the list has them all', () => {
    const rows = Array.from({ length: 300 }, (_, i) => row(`engineer-${i + 1}`, 'failed', 'AgentExited'));
    const v = teamVerdict(rows)!;
    expect(v.message).toContain(`and ${300 - NAMED_IN_MESSAGE} more`);
    expect(v.message.length).toBeLessThan(3000);
    expect(v.failed).toHaveLength(300);
  });
});
