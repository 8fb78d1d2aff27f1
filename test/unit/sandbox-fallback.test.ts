/** Without bubblewrap, run_command refuses commands that plainly name a path outside the workspace. */
import { describe, expect, it } from 'vitest';
import { fallbackRefusal } from '../../activities/sandbox/fallback';

const WS = '/work/runs/ws';
const refusal = (argv: string[], cwd = WS) => fallbackRefusal(argv, WS, cwd);

describe('fallbackRefusal', () => {
  it.each([
    [['sh', '-c', 'echo a > ../x'], '../x'],
    [['sh', '-c', 'echo b >/tmp/x'], '/tmp/x'],
    [['sh', '-c', 'cat /etc/passwd > pw.txt'], '/etc/passwd'],
    [['cp', '/work/runs/other/theirs.txt', '.'], '/work/runs/other/theirs.txt'],
    [['sh', '-c', 'cat ~/.ssh/id_rsa'], '~/.ssh/id_rsa'],
    [['tool', '--out=/tmp/y'], '/tmp/y'],
    [['sh', '-c', 'cd .. && touch x'], '..'],
  ])('refuses %j, naming %s', (argv, named) => {
    expect(refusal(argv)).toBe(
      `without a sandbox (bubblewrap), run_command may not name a path outside the workspace: "${named}"`,
    );
  });

  it('resolves relative words from the working directory', () => {
    expect(refusal(['cat', '../notes.txt'], `${WS}/sub`)).toBeUndefined();
    expect(refusal(['cat', '../../notes.txt'], `${WS}/sub`)).toMatch(/"\.\.\/\.\.\/notes\.txt"/);
  });

  it('errs on the side of refusing: words are read from the starting directory, not after a cd', () => {
    expect(refusal(['sh', '-c', 'mkdir -p a/b && cd a/b && cd ../.. && ls'])).toMatch(/"\.\.\/\.\."/);
  });

  it.each([
    [['sh', '-c', 'echo hi > out.txt && ls -la src | grep ts > /dev/null']],
    [['/usr/bin/git', 'status']],
    [['node', '-e', 'console.log(1)']],
    [['cat', `${WS}/a/b.txt`]],
  ])('lets %j run', (argv) => {
    expect(refusal(argv)).toBeUndefined();
  });
});
