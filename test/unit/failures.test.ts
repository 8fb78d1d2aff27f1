import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliFailureType, NON_RETRYABLE_CLI_FAILURES } from '../../activities/cli/classify';
import { ApiFailureType, NON_RETRYABLE_API_FAILURES } from '../../activities/api/errors';
import {
  countsAgainstAgent,
  FAILURES,
  isBudgetFailure,
  isRetryable,
  NON_RETRYABLE_ERROR_TYPES,
  retryPolicy,
} from '../../src/shared/failures';

const root = path.resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(rel);
    return rel.endsWith('.ts') ? [rel] : [];
  });
}

describe('the failure registry', () => {
  it('retries infrastructure failures without limit and nothing else', () => {
    const policy = retryPolicy();
    expect(policy.maximumAttempts).toBeUndefined();
    expect(policy.nonRetryableErrorTypes).toEqual([...NON_RETRYABLE_ERROR_TYPES]);
    for (const t of ['RateLimited', 'ApiUnavailable', 'GitLocked', 'ProcessKilled'])
      expect(isRetryable(t)).toBe(true);
    // A timeout or a plain error has no registered type: it is the infrastructure's (a lost worker).
    expect(isRetryable(undefined)).toBe(true);
    for (const t of [
      'AgentHung',
      'AgentExited',
      'CliError',
      'BudgetExhausted',
      'InvalidGate',
      'ScriptNotFound',
    ])
      expect(NON_RETRYABLE_ERROR_TYPES).toContain(t);
  });

  it("counts the agent's own failures against its attempts, never budgets, input or crashes", () => {
    expect(countsAgainstAgent('AgentHung')).toBe(true);
    expect(countsAgainstAgent('AgentExited')).toBe(true);
    expect(countsAgainstAgent('MaxTurnsExceeded')).toBe(true);
    expect(countsAgainstAgent('BudgetExhausted')).toBe(false);
    expect(countsAgainstAgent('InvalidAgent')).toBe(false);
    expect(countsAgainstAgent(undefined)).toBe(false);
    expect(isBudgetFailure('BudgetExhausted')).toBe(true);
    expect(isBudgetFailure('CliError')).toBe(false);
  });

  it('knows every type the cli and api backends raise, and derives their non-retryable lists', () => {
    for (const t of [...Object.values(CliFailureType), ...Object.values(ApiFailureType)])
      expect(Object.keys(FAILURES), t).toContain(t);
    expect(NON_RETRYABLE_CLI_FAILURES).toEqual(Object.values(CliFailureType).filter((t) => !isRetryable(t)));
    expect(NON_RETRYABLE_API_FAILURES).toEqual(Object.values(ApiFailureType).filter((t) => !isRetryable(t)));
  });

  it('is the only source of retry lists: no proxy spells out nonRetryableErrorTypes or maximumAttempts', () => {
    const offenders = sourceFiles('workflows').filter((f) =>
      /nonRetryableErrorTypes|maximumAttempts/.test(fs.readFileSync(path.join(root, f), 'utf8')),
    );
    expect(offenders).toEqual([]);
  });

  it('registers every type raised with a literal name in activities and workflows', () => {
    const raised = new Set<string>();
    for (const f of [...sourceFiles('activities'), ...sourceFiles('workflows')]) {
      const text = fs.readFileSync(path.join(root, f), 'utf8');
      for (const m of text.matchAll(/(?:type: |nonRetryable\([^;]*?, )'([A-Z][A-Za-z]+)'/g))
        raised.add(m[1]!);
    }
    expect(raised.size).toBeGreaterThan(5);
    expect([...raised].filter((t) => !(t in FAILURES))).toEqual([]);
  });
});
