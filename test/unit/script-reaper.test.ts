/**
 * The reaper that runs a script agent inside bubblewrap's pid namespace (activities/script/reaper): it
 * waits for the script's main process only, ends and names what the script left in the background, and
 * keeps the script's exit status.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { reapedCommand } from '../../activities/script/reaper';
import { processesMentioning } from '../harness/processes';

const bwrap = spawnSync('bwrap', [
  '--ro-bind',
  '/',
  '/',
  '--dev',
  '/dev',
  '--proc',
  '/proc',
  '--unshare-pid',
  'true',
]);

describe.skipIf(bwrap.status !== 0)('script reaper (inside bwrap)', () => {
  it('ends and names a background child, returns at once with the script status', () => {
    const seconds = `305.${String(Date.now()).slice(-6)}`;
    const r = spawnSync(
      'bwrap',
      [
        '--ro-bind',
        '/',
        '/',
        '--dev',
        '/dev',
        '--proc',
        '/proc',
        '--unshare-pid',
        '--die-with-parent',
        '--',
        ...reapedCommand(['sh', '-c', `sleep ${seconds} & echo done; exit 3`]),
      ],
      // Were the pipe held by the sleep, the timeout would end bwrap and the status would be null.
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).toBe(3);
    expect(r.stdout).toBe('done\n');
    expect(r.stderr).toMatch(
      new RegExp(
        // The leftover is named as the reaper found it: `sleep …`, or, when the reaper came before the
        // background child's exec (a loaded machine), the shell it was forked from.
        `^\\[orchestrator\\] ended 1 background process\\(es\\) left by the script: \\d+ (sh -c )?sleep ${seconds.replace('.', '\\.')}( & echo done; exit 3)?\\.\\n$`,
      ),
    );
    expect(processesMentioning(`sleep ${seconds}`)).toEqual([]);
  });

  it('says nothing when the script leaves nothing behind', () => {
    const r = spawnSync(
      'bwrap',
      [
        '--ro-bind',
        '/',
        '/',
        '--dev',
        '/dev',
        '--proc',
        '/proc',
        '--unshare-pid',
        '--',
        ...reapedCommand(['true']),
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
