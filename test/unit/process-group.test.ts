/**
 * Ending a process group leaves nothing listed: orphans of the group (reparented to pid 1 when their
 * parent died first) are waited for until they are reaped, zombies included.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { groupExists, killGroupAndWait } from '../../activities/process-group';

/** Every process of group `pgid` that `ps` lists, zombies included. */
function listed(pgid: number): string[] {
  return execFileSync('ps', ['-eo', 'pgid=,stat=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim().split(/\s+/)[0] === String(pgid));
}

describe('killGroupAndWait', () => {
  it('returns only once every process of the group, orphans and zombies included, is gone', async () => {
    const tag = `pg-${randomUUID()}`;
    // The leader's child forks a grandchild and exits: the grandchild is an orphan of the group.
    const child = spawn('sh', ['-c', `(sh -c 'sleep 60; : ${tag}' &) ; sleep 60`], {
      detached: true,
      stdio: 'ignore',
    });
    const pgid = child.pid!;
    for (let i = 0; i < 100 && !listed(pgid).some((l) => l.includes(tag)); i++) await delay(50);
    expect(listed(pgid).some((l) => l.includes(tag))).toBe(true);

    expect(await killGroupAndWait(pgid)).toBe(true);
    expect(groupExists(pgid)).toBe(false);
    expect(listed(pgid)).toEqual([]);
  });

  it('is true at once for a group that does not exist', async () => {
    expect(await killGroupAndWait(undefined)).toBe(true);
    expect(groupExists(2 ** 22 + 12345)).toBe(false);
  });
});
