/** The bounded cache behind the gates' passed files and the manifests' hashes (activities/workspace/hashing). */
import { describe, expect, it } from 'vitest';
import { LruMap } from '../../activities/workspace/hashing';

describe('LruMap', () => {
  it('holds at most its capacity however many keys it is given', () => {
    const m = new LruMap(100);
    for (let i = 0; i < 10_000; i++) m.set(`k${i}`, String(i));
    expect(m.size).toBeLessThanOrEqual(100);
    expect(m.get('k9999')).toBe('9999');
    expect(m.get('k0')).toBeUndefined();
  });

  it('keeps a key used since the last turn-over while newer keys push others out', () => {
    const m = new LruMap(10);
    m.set('hot', 'h');
    for (let i = 0; i < 1_000; i++) {
      m.set(`cold${i}`, '');
      expect(m.get('hot')).toBe('h');
    }
    expect(m.get('cold0')).toBeUndefined();
  });

  it('replaces a value and forgets everything on clear', () => {
    const m = new LruMap(10);
    m.set('a', '1');
    for (let i = 0; i < 4; i++) m.set(`x${i}`, '');
    m.set('a', '2');
    expect(m.get('a')).toBe('2');
    m.clear();
    expect(m.get('a')).toBeUndefined();
    expect(m.size).toBe(0);
  });
});
