/** Server-free checks of the confinement pieces: the name pattern, the env allow-list, redaction, the bwrap mount plan. */
import { describe, expect, it } from 'vitest';
import { bwrapArgs, SANDBOX_HOSTNAME, mountPlan, type SandboxPolicy } from '../../activities/sandbox/bwrap';
import { childEnv, modelCredentialEnv } from '../../activities/sandbox/env';
import { createRedactor, LineRedactor, secretValuesOf } from '../../src/redact';
import { assertSafeName, nameProblem, SafeNameSchema } from '../../src/shared/ids';
import { SpawnRequestSchema, TeamWorkflowInputSchema } from '../../src/shared/team';
import { ProjectSpecSchema } from '../../src/shared/spec';

describe('names', () => {
  it.each(['../x', 'a/b', '.hidden', '..', '', 'a b', 'x\n', 'é', '-lead', 'a'.repeat(65)])(
    'refuses %j',
    (bad) => {
      expect(SafeNameSchema.safeParse(bad).success).toBe(false);
      expect(nameProblem(bad)).toBeDefined();
    },
  );
  it.each(['demo-abc123', 'A_b-9', 'a'.repeat(64)])('accepts %j', (ok) => {
    expect(SafeNameSchema.parse(ok)).toBe(ok);
  });
  it('names the field and cuts a long value in its message', () => {
    expect(() => assertSafeName('run id', `../${'x'.repeat(500)}`)).toThrow(
      /^run id "\.\.\/x{77}…": must be at most 64 characters \(got 503\)$/,
    );
  });
  it('applies to run ids, team ids, agent and phase names, clients and spawn requests', () => {
    const phase = { name: 'dev', agents: [{ id: 'a', role: 'r', command: ['true'] }] };
    expect(
      ProjectSpecSchema.safeParse({ project: { name: 'p', client: '../x' }, phases: [phase] }).success,
    ).toBe(false);
    expect(
      ProjectSpecSchema.safeParse({ project: { name: 'p' }, phases: [{ ...phase, name: '../dev' }] }).success,
    ).toBe(false);
    expect(
      ProjectSpecSchema.safeParse({
        project: { name: 'p' },
        phases: [{ ...phase, agents: [{ id: '../a', role: 'r', command: ['true'] }] }],
      }).success,
    ).toBe(false);
    expect(TeamWorkflowInputSchema.shape.runId.safeParse('../team/X').success).toBe(false);
    const req = { role: 'intern', name: '../x', instructions: 'do', requestedBy: 'manager-1' };
    expect(SpawnRequestSchema.safeParse(req).success).toBe(false);
  });
});

describe('child environment', () => {
  const worker = {
    PATH: '/usr/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    ANTHROPIC_API_KEY: 'sk-ant-secret-123456',
    TEMPORAL_API_KEY: 'tkey-123456789',
    AWS_SECRET_ACCESS_KEY: 'aws-123456789',
    RANDOM_VAR: 'x',
  };
  it('holds only the allow-list, HOME and what the activity sets; extras cannot set credentials or loaders', () => {
    const env = childEnv({
      worker,
      home: '/scratch',
      fixed: { NO_COLOR: '1' },
      extra: {
        FOO: 'bar',
        ANTHROPIC_API_KEY: 'x',
        ANTHROPIC_BASE_URL: 'http://evil',
        LD_PRELOAD: '/x.so',
        NODE_OPTIONS: '-r x',
      },
    });
    expect(env).toEqual({ PATH: '/usr/bin', LANG: 'C.UTF-8', HOME: '/scratch', FOO: 'bar', NO_COLOR: '1' });
  });
  it('puts the model key only where asked for (claude)', () => {
    expect(modelCredentialEnv({ apiKey: 'k', baseURL: 'http://127.0.0.1:1' })).toEqual({
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:1',
    });
  });
});

describe('redaction', () => {
  const redact = createRedactor(
    secretValuesOf({
      ANTHROPIC_API_KEY: 'plain-secret-value',
      GITHUB_TOKEN: 'ghp_0123456789',
      SHORT_KEY: 'x',
    }),
  );
  it('removes known secret values and key shapes', () => {
    expect(redact('a plain-secret-value b ghp_0123456789 c')).toBe('a [redacted] b [redacted] c');
    expect(redact('key sk-ant-api03-AbC_def-0123456789 end')).toBe('key sk-ant-[redacted] end');
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----';
    expect(redact(`x\n${pem}\ny`)).toBe('x\n[redacted private key]\ny');
    expect(redact('tail of a cut key\n-----END PRIVATE KEY-----\nafter')).toBe(
      '[redacted private key]\nafter',
    );
    expect(redact('-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn')).toBe('[redacted private key]');
  });
  it('finds a secret split across stream chunks and drops PEM bodies line by line', () => {
    const lines = new LineRedactor();
    const out =
      lines.push('one sk-ant-api0') +
      lines.push('3-SPLITSPLIT\n-----BEGIN PRIVATE KEY-----\nMIIEv') +
      lines.push('QIBADAN\n-----END PRIVATE KEY-----\nlast') +
      lines.flush();
    expect(out).not.toContain('SPLITSPLIT');
    expect(out).not.toContain('MIIEv');
    expect(out).toContain('last');
  });
});

describe('bwrap mount plan', () => {
  const policy: SandboxPolicy = {
    workspace: '/home/u/runs/ws',
    hide: ['/tmp', '/home/u/runs', '/home/u', '/srv/outputs'],
    reveal: ['/home/u/.local/bin', '/usr/bin'],
    readOnlyInside: ['/home/u/runs/ws/.orchestrator'],
    denyFiles: ['/etc/shadow'],
    network: false,
    env: { PATH: '/usr/bin' },
    scratch: '/tmp/.scratch',
  };
  it('hides outer folders before binding inner ones back, and reveals only what a hide covers', () => {
    expect(mountPlan(policy).map((m) => `${m.kind} ${m.at}`)).toEqual([
      'hide /tmp',
      'hide /home/u',
      'hide /srv/outputs',
      'scratch /tmp/.scratch',
      'hide /home/u/runs',
      'reveal /home/u/.local/bin',
      'rw /home/u/runs/ws',
      'ro /home/u/runs/ws/.orchestrator',
    ]);
  });
  it('builds an argv with a clean env, no network, dropped capabilities and read-only hides', () => {
    const args = bwrapArgs(policy, ['sh', '-c', 'true'], { denyFile: '/x/denied', isRoot: true }).join(' ');
    expect(args).toMatch(/^--ro-bind \/ \/ /);
    expect(args).toContain('--bind /home/u/runs/ws /home/u/runs/ws');
    expect(args).toContain('--ro-bind /x/denied /etc/shadow');
    expect(args).toContain('--remount-ro /home/u/runs');
    expect(args).toContain('--unshare-net');
    expect(args).toContain('--unshare-pid');
    // Its own host name: inside, no `<pid>@<host>` of a worker may be taken for a process it can probe.
    expect(args).toContain(`--unshare-uts --hostname ${SANDBOX_HOSTNAME}`);
    expect(args).toContain('--cap-drop ALL');
    // The environment is bwrap's own, never in its argv (which the whole host can read).
    const withKey = bwrapArgs(
      { ...policy, env: { PATH: '/usr/bin', ORCHESTRATOR_AGENT_KEY: 'cap-0123' } },
      ['true'],
      {
        denyFile: '/d',
        isRoot: true,
      },
    ).join(' ');
    expect(withKey).not.toMatch(/--setenv|--clearenv|cap-0123/);
    expect(args.endsWith('--chdir /home/u/runs/ws -- sh -c true')).toBe(true);
    expect(
      bwrapArgs({ ...policy, network: true }, ['true'], { denyFile: '/d', isRoot: false }).join(' '),
    ).not.toMatch(/--unshare-net|--cap-drop/);
  });
});
