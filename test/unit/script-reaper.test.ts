/**
 * The reaper that runs a script agent inside bubblewrap's pid namespace (activities/script/reaper): it
 * waits for the script's main process only, ends and names what the script left in the background, and
 * keeps the script's exit status.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { reapedCommand } from '../../activities/script/reaper';
import { processesMentioning } from '../harness/processes';

/** bwrap's arguments for a program alone in a pid namespace of its own (as the product runs the reaper). */
const OWN_PID_NAMESPACE = ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--unshare-pid'];

const bwrap = spawnSync('bwrap', [...OWN_PID_NAMESPACE, 'true']);

describe.skipIf(bwrap.status !== 0)('script reaper (inside bwrap)', () => {
  it('ends and names a background child, returns at once with the script status', () => {
    const seconds = `305.${String(Date.now()).slice(-6)}`;
    const r = spawnSync(
      'bwrap',
      [
        ...OWN_PID_NAMESPACE,
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
    const r = spawnSync('bwrap', [...OWN_PID_NAMESPACE, '--', ...reapedCommand(['true'])], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('sweeps nothing when its parent is not the namespace init: it runs the script alone and says so', () => {
    // Inside a namespace of its own, so that were the guard gone the sweep could only end this test's
    // processes (the outer shell among them), never the host's. The reaper's parent is that shell, not 1.
    const seconds = `306.${String(Date.now()).slice(-6)}`;
    const outer = `sleep ${seconds} & s=$!; "$@"; code=$?; kill -0 "$s" && echo sentinel alive; kill "$s"; exit "$code"`;
    const r = spawnSync(
      'bwrap',
      [
        ...OWN_PID_NAMESPACE,
        '--die-with-parent',
        '--',
        'sh',
        '-c',
        outer,
        'outer',
        ...reapedCommand(['sh', '-c', 'echo done; exit 4']),
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.stdout).toBe('done\nsentinel alive\n');
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(
      /^orchestrator-reaper: not alone in a pid namespace \(parent 2, not 1\); running without the sweep\n$/,
    );
    expect(processesMentioning(`sleep ${seconds}`)).toEqual([]);
  });
});
