/**
 * Which pollers the server still lists are workers known to be gone: only a process of this host, named
 * by the SDK's default identity `<pid>@<hostname>`, that no longer exists. Everything else is counted as
 * polling, so a live or unknown worker still gets its query.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { goneLocalPoller } from '../../src/run-record';

describe('goneLocalPoller', () => {
  const alive = new Set([100]);
  const probe = (pid: number) => alive.has(pid);

  it('is true only for a pid of this host that does not exist', () => {
    expect(goneLocalPoller('200@here', 'here', probe)).toBe(true);
    expect(goneLocalPoller('100@here', 'here', probe)).toBe(false);
  });

  it('counts other hosts, other identities and nonsense as polling', () => {
    for (const identity of [
      '200@elsewhere',
      'worker-a',
      '',
      '@here',
      'x200@here',
      '0@here',
      '99999999999999999999@here',
    ])
      expect(goneLocalPoller(identity, 'here', probe), identity).toBe(false);
  });

  it('asks the real process table by default: a finished child is gone, this process is not', () => {
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const exited = Number(child.stdout);
    expect(exited).toBeGreaterThan(0);
    expect(goneLocalPoller(`${exited}@${os.hostname()}`)).toBe(true);
    expect(goneLocalPoller(`${process.pid}@${os.hostname()}`)).toBe(false);
    expect(goneLocalPoller(`${exited}@not-${os.hostname()}`)).toBe(false);
  });
});
