/**
 * What a team keeps of the messages it delivers (digests, the newest per agent) and how it answers
 * `messageVouched`: an agent takes a `deliverMessage` into its inbox only when its team sent it.
 */
import { describe, expect, it } from 'vitest';
import { messageDigest, VOUCHED_MESSAGES_KEPT } from '../../src/shared/team';
import { messageVouched, vouchFor } from '../../workflows/team/messages';

const team = () => ({ sentMessages: new Map<string, string[]>() });

describe('vouched messages', () => {
  it('vouches for what it sent to that agent, from that sender, with that text, and nothing else', () => {
    const run = team();
    vouchFor(run, 'manager-1', 'architect-1', 'plan is ready');
    const ask = (to: string, from: string, text: string) =>
      messageVouched(run, { to, digest: messageDigest(to, from, text) });
    expect(ask('manager-1', 'architect-1', 'plan is ready')).toBe(true);
    expect(ask('manager-1', 'operator', 'plan is ready')).toBe(false);
    expect(ask('manager-1', 'architect-1', 'plan is ready!')).toBe(false);
    expect(ask('intern-1', 'architect-1', 'plan is ready')).toBe(false);
  });

  it('keeps the newest digests per agent only', () => {
    const run = team();
    for (let i = 0; i <= VOUCHED_MESSAGES_KEPT; i++) vouchFor(run, 'a', 'b', `m${i}`);
    expect(run.sentMessages.get('a')).toHaveLength(VOUCHED_MESSAGES_KEPT);
    expect(messageVouched(run, { to: 'a', digest: messageDigest('a', 'b', 'm0') })).toBe(false);
    expect(
      messageVouched(run, { to: 'a', digest: messageDigest('a', 'b', `m${VOUCHED_MESSAGES_KEPT}`) }),
    ).toBe(true);
  });

  it('a digest is not fooled by moving text between fields', () => {
    expect(messageDigest('a', 'b c', 'd')).not.toBe(messageDigest('a', 'b', 'c d'));
    expect(messageDigest('a', 'b', 'c')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a malformed question (failing only the query)', () => {
    for (const bad of [
      null,
      {},
      { to: 'a' },
      { to: 'a', digest: 'xyz' },
      { to: 'a', digest: 'a'.repeat(64), x: 1 },
    ]) {
      expect(() => messageVouched(team(), bad), JSON.stringify(bad)).toThrow(
        /invalid messageVouched request/,
      );
    }
  });
});
