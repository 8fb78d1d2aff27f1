/**
 * Confinement against a careless intake or a misbehaving agent, on the real dev server with the local
 * model server: api tools honour `allowed_tools`; run_command and script agents cannot write outside
 * their workspace, read another run's workspace or /etc/passwd (bubblewrap); a secret in the worker's
 * environment or printed by an agent appears nowhere we write or record; bad names are refused before
 * any file is written.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox } from '../../activities/sandbox';
import { createLogger } from '../../src/logger';
import { startModelServer, type ModelServer } from '../../src/modelserver';
import { resetRedaction } from '../../src/redact';
import { startRun } from '../../src/runs';
import { ProjectSpecSchema, type ProjectSpec } from '../../src/shared/spec';
import { WorkflowType } from '../../src/shared/names';
import { cliEnv, runCli } from '../harness/cli';
import { createTestEnv, env, tempDir, type TestEnv } from '../harness/temporal';

const execFileP = promisify(execFile);

/** The worker's secrets: in its environment, and the key it hands to the SDK and claude. */
const API_KEY = 'sk-ant-api03-CONFINE-worker-key-0123456789abcdef';
const TEMPORAL_KEY = 'temporal-key-CONFINE-9876543210';
/** A key-shaped value an agent finds in its workspace and prints. */
const FOUND_KEY = 'sk-ant-api03-FOUND-in-workspace-abcdef0123456789';

function spec(name: string, agents: unknown[]): ProjectSpec {
  return ProjectSpecSchema.parse({
    project: { name },
    phases: [{ name: 'development', agents, artifacts: [] }],
  });
}

/** Every file under `dir` (relative paths), for before/after comparisons. */
function listing(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

/** All text under `dir`, concatenated (for "appears nowhere" checks). */
function allText(dir: string): string {
  return listing(dir)
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile())
    .map((f) => fs.readFileSync(f, 'utf8'))
    .join('\n');
}

describe('confinement', () => {
  let t: TestEnv;
  let server: ModelServer;
  let logFile: string;
  let sandboxed: boolean;
  const saved = { api: process.env.ANTHROPIC_API_KEY, temporal: process.env.TEMPORAL_API_KEY };

  beforeAll(async () => {
    process.env.ANTHROPIC_API_KEY = API_KEY;
    process.env.TEMPORAL_API_KEY = TEMPORAL_KEY;
    resetRedaction();
    server = await startModelServer();
    t = await createTestEnv();
    logFile = path.join(tempDir('orch-log-'), 'worker.log');
    const sandbox = createSandbox({ outputsDir: t.config.outputsDir, stateDir: t.config.home });
    sandboxed = (await sandbox.state()).kind === 'bwrap';
    await t.startWorker({
      logger: createLogger('debug', { test: true }, pino.destination({ dest: logFile, sync: true })),
      deps: {
        config: {
          ...t.config,
          anthropic: { baseURL: server.url, apiKey: API_KEY },
          agentHome: tempDir('orch-home-'),
        },
        sandbox,
      },
    });
  });
  afterAll(async () => {
    await t.close();
    await server.close();
    process.env.ANTHROPIC_API_KEY = saved.api;
    process.env.TEMPORAL_API_KEY = saved.temporal;
    if (saved.api === undefined) delete process.env.ANTHROPIC_API_KEY;
    if (saved.temporal === undefined) delete process.env.TEMPORAL_API_KEY;
    resetRedaction();
  });

  it('runs with bubblewrap here (CI must not silently fall back)', () => {
    expect(sandboxed).toBe(true);
  });

  it('an api agent calling a tool its allowed_tools does not list gets a tool error, and the audit says so', async () => {
    const ws = tempDir('orch-ws-');
    const input = await startRun(t.client, {
      spec: spec('allowed tools', [
        {
          id: 'reader',
          role: 'developer',
          backend: 'api',
          allowed_tools: ['read_file', 'write_file'],
          prompt: 'Copy a file.\n@force-bash cat /etc/passwd > pw.txt\n@write ok.txt done',
        },
      ]),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const summary = (await t.client.workflow.getHandle(input.runId).result()) as { state: string };
    expect(summary.state).toBe('completed');
    expect(fs.existsSync(path.join(ws, 'pw.txt'))).toBe(false);
    expect(fs.readFileSync(path.join(ws, 'ok.txt'), 'utf8')).toBe('done');
    // The model saw the refusal as the tool's result (the transcript keeps every request sent).
    const transcript = fs.readFileSync(
      path.join(t.config.outputsDir, input.runId, 'agents', 'development-reader.jsonl'),
      'utf8',
    );
    expect(transcript).toContain(
      'tool \\"run_command\\" is not allowed for this agent (allowed: read_file, write_file)',
    );
    // … and was offered only the listed tools.
    const offered = server.requests.filter((r) => r.firstUserText.startsWith('Copy a file'));
    expect(offered.length).toBeGreaterThan(1);
    for (const r of offered) expect(r.toolNames.sort()).toEqual(['read_file', 'write_file']);
    const audit = fs.readFileSync(path.join(t.config.outputsDir, input.runId, 'audit.jsonl'), 'utf8');
    const refused = audit
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { kind: string; details: { tool?: string; agent?: string } })
      .filter((e) => e.kind === 'tool_refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.details).toMatchObject({ tool: 'run_command', agent: 'reader' });
  });

  it("run_command and script agents cannot write ../x, /tmp/x or another run's workspace, nor copy /etc/passwd", async () => {
    const root = tempDir('orch-escape-');
    const ws = path.join(root, 'ws');
    const other = path.join(root, 'other-run');
    fs.mkdirSync(ws);
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'theirs.txt'), 'another run\n');
    const tag = `esc${Date.now()}`;
    const attempts = [
      `echo a > ../${tag}-up.txt`,
      `echo b > /tmp/${tag}-tmp.txt`,
      `echo c > ${other}/${tag}-other.txt`,
      `cat ${other}/theirs.txt > stolen.txt`,
      `cat /etc/passwd > passwd.txt`,
      `ls ${t.config.outputsDir} > outputs.txt`,
    ];
    const input = await startRun(t.client, {
      spec: spec('escape', [
        {
          id: 'tooluser',
          role: 'developer',
          backend: 'api',
          prompt: ['Try things.', ...attempts.map((a) => `@bash ${a.replaceAll('.txt', '-api.txt')}`)].join(
            '\n',
          ),
        },
        {
          id: 'scripter',
          role: 'developer',
          backend: 'script',
          command: [
            'sh',
            '-c',
            `${attempts.map((a) => a.replaceAll('.txt', '-script.txt')).join('; ')}; true`,
          ],
        },
      ]),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const summary = (await t.client.workflow.getHandle(input.runId).result()) as { state: string };
    expect(summary.state).toBe('completed');
    expect(listing(root).filter((f) => f.includes(tag))).toEqual([]);
    expect(fs.readdirSync('/tmp').filter((f) => f.includes(tag))).toEqual([]);
    expect(listing(other)).toEqual(['theirs.txt']);
    const passwd = fs.readFileSync('/etc/passwd', 'utf8').split('\n')[0]!;
    for (const who of ['api', 'script']) {
      // The redirections ran (the workspace is writable) but nothing was read into them.
      for (const f of ['stolen', 'passwd', 'outputs']) {
        const file = path.join(ws, `${f}-${who}.txt`);
        const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
        expect(text, file).not.toContain('another run');
        expect(text, file).not.toContain(passwd);
        expect(text, file).not.toContain(input.runId);
      }
    }
  });

  it('a script agent printing its environment (and a key it found) leaks it nowhere: outputs, logs, audit, history', async () => {
    const ws = tempDir('orch-ws-');
    fs.writeFileSync(path.join(ws, 'found.txt'), `${FOUND_KEY}\n`);
    const input = await startRun(t.client, {
      spec: spec('secrets', [
        {
          id: 'leaker',
          role: 'developer',
          backend: 'script',
          env: { ANTHROPIC_API_KEY: 'intake-tries-to-set-it', ANTHROPIC_BASE_URL: 'http://evil.invalid' },
          command: [
            'sh',
            '-c',
            'env; echo "key=$ANTHROPIC_API_KEY base=$ANTHROPIC_BASE_URL"; cat /proc/*/environ 2>/dev/null | tr "\\0" "\\n" | grep -i key; cat found.txt',
          ],
        },
      ]),
      workspace: ws,
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    const summary = (await t.client.workflow.getHandle(input.runId).result()) as { state: string };
    expect(summary.state).toBe('completed');
    const out = allText(path.join(t.config.outputsDir, input.runId));
    expect(out).toContain('key= base='); // the script ran and printed its environment
    expect(out).toContain('sk-ant-[redacted]'); // … and the key it found, redacted
    const log = fs.readFileSync(logFile, 'utf8');
    const shows: string[] = [];
    // A script agent's turn is an activity of the run itself (patch script-agent-activity): one history.
    for (const id of [input.runId]) {
      const { stdout } = await execFileP(
        env('ORCH_TEST_TEMPORAL_CLI'),
        ['workflow', 'show', '--workflow-id', id, '-o', 'json', '--address', t.config.temporal.address],
        // With TEMPORAL_API_KEY set the CLI would switch to TLS; the dev server speaks plain gRPC.
        { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, TEMPORAL_API_KEY: '' } },
      );
      shows.push(stdout);
    }
    expect(shows[0]).toContain('scriptTurn');
    for (const [where, text] of [
      ['outputs', out],
      ['worker log', log],
      ['history', shows.join('\n')],
    ] as const) {
      for (const secret of [
        API_KEY,
        TEMPORAL_KEY,
        FOUND_KEY,
        'intake-tries-to-set-it'.slice(0, 0) || FOUND_KEY,
      ]) {
        expect(text.includes(secret), `${where} holds ${secret.slice(0, 12)}…`).toBe(false);
      }
    }
    expect(out).not.toContain('evil.invalid');
  });

  it('../-style and over-long run ids, team ids and agent names are refused before any file is written', async () => {
    const outputsBefore = listing(t.config.outputsDir);
    const root = tempDir('orch-names-');
    const intake = path.join(root, 'intake.yaml');
    fs.writeFileSync(
      intake,
      'project: { name: names }\nphases:\n  - name: development\n    agents: [{ role: dev, backend: script, command: [sh, -c, "echo x > /tmp/names-ran"] }]\n',
    );
    // The CLI (slow to start on a loaded machine: three calls only).
    const cases: [string[], RegExp][] = [
      [
        ['run', 'start', '--intake', intake, '--workspace', path.join(root, 'ws1'), '--run-id', '../bad/X'],
        /run id "\.\.\/bad\/X" must be letters/,
      ],
      [
        [
          'run',
          'start',
          '--intake',
          intake,
          '--workspace',
          path.join(root, 'ws2'),
          '--run-id',
          'a'.repeat(200),
        ],
        /must be at most 64 characters/,
      ],
      [
        [
          'team',
          'start',
          'goal',
          '--workspace',
          path.join(root, 'ws3'),
          '--run-id',
          '../team/X',
          '--backend',
          'script',
        ],
        /run id "\.\.\/team\/X" must be letters/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args, cliEnv(t), 300_000);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(listing(root)).toEqual(['intake.yaml']);

    // A client that goes around the CLI: the workflow refuses its input before any activity runs.
    const bad = [
      { runId: '../escaped', agentId: 'dev' },
      { runId: 'names-ok', agentId: '../../evil' },
    ];
    for (const [i, b] of bad.entries()) {
      const handle = await t.client.workflow.start(WorkflowType.project, {
        taskQueue: t.taskQueue,
        workflowId: `names-direct-${i}-${Date.now()}`,
        args: [
          {
            runId: b.runId,
            spec: {
              project: { name: 'names' },
              phases: [
                {
                  name: 'development',
                  agents: [
                    {
                      id: b.agentId,
                      role: 'dev',
                      backend: 'script',
                      command: ['sh', '-c', 'echo x > /tmp/names-ran'],
                    },
                  ],
                },
              ],
            },
            workspace: path.join(root, `ws-direct-${i}`),
            outputsDir: t.config.outputsDir,
          },
        ],
      });
      const err = await handle.result().catch((e: unknown) => e);
      expect(String((err as { cause?: Error }).cause?.message)).toMatch(/must be letters/);
    }
    expect(listing(t.config.outputsDir)).toEqual(outputsBefore);
    expect(fs.existsSync(path.join(t.config.outputsDir, '..', 'escaped'))).toBe(false);
    expect(fs.existsSync('/tmp/names-ran')).toBe(false);
    expect(listing(root)).toEqual(['intake.yaml']);
  }, 900_000);
});
