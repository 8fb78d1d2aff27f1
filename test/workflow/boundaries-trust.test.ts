/**
 * Boundaries that hold against a careless intake or a misbehaving agent (issue #10, items 1, 4, 5, 6), on
 * the real dev server, through the real CLI:
 * - an intern acting as its manager (by every documented means) is refused and audited as a spoof
 *   attempt; a forged capability is refused; no secret reaches history or another agent;
 * - an intake that disables a mandatory gate, or names an unknown client, is refused before any run;
 * - a flood of refused signals (1.5 MB reasons, garbage) leaves the run completing, each refusal cut to
 *   the bound; 1,000+ entries are all readable; an edited, deleted or inserted line is named by --verify,
 *   with and without a worker;
 * - a busy workspace refuses a second run or team naming the first, until it is cancelled or terminated;
 *   a run leaves the user's `git status` as it was.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditTrail } from '../../activities/audit';
import { loadHierarchyPolicy } from '../../config/hierarchy';
import { AUDIT_DETAILS_LIMIT, AuditEntrySchema, type AuditEntry } from '../../src/shared/audit';
import { rollbackSignal } from '../../src/shared/messages';
import { capabilityProof } from '../../src/shared/identity';
import { requestAgentUpdate, type SpawnRequest, type TeamStatus } from '../../src/shared/team';
import { requestAgent, SpawnRefusedError, spawnAgent, startTeam, teamStatus } from '../../src/teams';
import { cliEnv, runCli as runCliOnce } from '../harness/cli';
import { waitFor } from '../harness/gates';
import { processesMentioning } from '../harness/processes';
import { stuckReport } from '../harness/stuck';
import { createTestEnv, tempDir, type TestEnv } from '../harness/temporal';

/** The CLI under a loaded machine: minutes, not the harness's default minute. */
const runCli = (args: string[], env: Record<string, string> = {}) => runCliOnce(args, env, 300_000);
/** These cases run several CLI processes and agents each; a shared 2-core machine makes them slow. */
const SLOW = 900_000;

const TEMPORAL = process.env.TEMPORAL_CLI ?? path.resolve(import.meta.dirname, '../../.tools/bin/temporal');

let t: TestEnv;
let stopWorker: () => Promise<void>;
beforeAll(async () => {
  t = await createTestEnv();
  const { worker, running } = await t.startWorker();
  stopWorker = async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
  };
});
afterAll(async () => t?.close());

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
}

const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

/** The run's result, or a failure naming what it is stuck on after `ms`. */
async function resultWithin<T>(runId: string, ms = 240_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void stuckReport(t.client, runId).then((r) =>
        reject(new Error(`run ${runId} did not close within ${ms / 1000} s: ${r}`)),
      );
    }, ms);
  });
  try {
    return (await Promise.race([t.client.workflow.getHandle(runId).result(), late])) as T;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Where a test's "go" file must live: the control folder the test workers' sandbox lets script agents see
 * (ORCHESTRATOR_SANDBOX_WRITABLE). Anywhere else under the temp folder the sandbox hides it, and an agent
 * waiting for it waits forever.
 */
function goFile(): string {
  const root = (process.env.ORCHESTRATOR_SANDBOX_WRITABLE ?? '').split(path.delimiter)[0];
  const dir = fs.mkdtempSync(path.join(root || tempDir('orch-trust-go-'), 'go-'));
  return path.join(dir, 'go');
}

/** A one-phase intake whose script agent waits until `goFile` exists (outside the workspace). */
function waitingIntake(dir: string, goFile: string, extra: string[] = [], client?: string): string {
  const file = path.join(dir, `intake-${Math.random().toString(36).slice(2, 8)}.yaml`);
  const script = `while [ ! -f ${goFile} ]; do sleep 0.2; done`;
  fs.writeFileSync(
    file,
    [
      `project: { name: bounded${client ? `, client: ${client}` : ''} }`,
      'phases:',
      '  - name: build',
      `    agents: [{ role: developer, backend: script, command: ['sh', '-c', ${JSON.stringify(script)}] }]`,
      '    artifacts: []',
      ...extra,
    ].join('\n'),
  );
  return file;
}

describe('agent identity cannot be borrowed', () => {
  it(
    "an intern acting as its manager is refused and audited as a spoof attempt; forged capabilities are refused; secrets stay out of history and other agents' env",
    async () => {
      const ws = tempDir('orch-trust-team-');
      write(ws, { 'eng.sh': 'echo built > built.txt\n' });
      const req = (args: string) =>
        `orchestrator team request --role software-engineer --instructions-file eng.sh ${args}`;
      const intern = [
        'env > intern.env',
        // 1. Naming the manager in the environment: the intern's own secret cannot prove it.
        `ORCHESTRATOR_AGENT_ID=manager-1 ${req('--name spoof-env')} > spoof-env.out 2>&1; echo "exit=$?" >> spoof-env.out`,
        // 2. The flag that used to name another requester is gone.
        `${req('--name spoof-as --as manager-1')} > spoof-as.out 2>&1; echo "exit=$?" >> spoof-as.out`,
        // 3. Marking the manager's tasks done, both ways.
        'ORCHESTRATOR_AGENT_ID=manager-1 orchestrator team task done --all > spoof-done.out 2>&1; echo "exit=$?" >> spoof-done.out',
        'orchestrator team task done --agent manager-1 --all > spoof-agent.out 2>&1; echo "exit=$?" >> spoof-agent.out',
        'touch intern.done',
      ].join('\n');
      const manager = [
        'touch manager.started',
        'while [ ! -f intern.done ] || [ ! -f forged.done ]; do sleep 0.2; done',
        `${req('--name real-dev')} > manager.out 2>&1`,
      ].join('\n');
      const input = await startTeam(t.client, {
        goal: 'Hold identities',
        workspace: ws,
        outputsDir: t.config.outputsDir,
        policy: loadHierarchyPolicy(undefined, { agent: { completionGraceS: 2 } }),
        backend: 'script',
        interns: 1,
        taskQueue: t.taskQueue,
        instructions: { manager, intern },
      });
      const { runId } = input;
      await waitFor(() => fs.existsSync(path.join(ws, 'manager.started')), 'the manager to start', 120_000);
      // The running manager's secret is in its environment only, not in any command line on the host
      // (bwrap's argv is world-readable in /proc).
      const managerKey = fs
        .readFileSync(path.join(t.config.outputsDir, runId, 'keys', 'manager-1.key'), 'utf8')
        .trim();
      expect(managerKey.length).toBeGreaterThan(20);
      expect(processesMentioning(managerKey)).toEqual([]);

      // Forged capabilities from a plain client: by update (refused to the sender) and by signal.
      const forged = {
        role: 'software-engineer',
        name: 'forged',
        instructions: 'true',
        requestedBy: 'manager-1',
      };
      const byUpdate = await requestAgent(t.client, runId, { ...forged, proof: 'f'.repeat(64) }).catch(
        (e: unknown) => e,
      );
      expect(byUpdate).toBeInstanceOf(SpawnRefusedError);
      expect((byUpdate as Error).message).toMatch(
        /spoof attempt: the request does not prove it comes from manager-1/,
      );
      const noProof = await requestAgent(t.client, runId, { ...forged, name: 'no-proof' }).catch(
        (e: unknown) => e,
      );
      expect((noProof as Error).message).toMatch(/spoof attempt.*no capability proof/);
      await spawnAgent(t.client, runId, { ...forged, name: 'forged-signal', proof: '0'.repeat(64) });
      fs.writeFileSync(path.join(ws, 'forged.done'), '');

      const final = await resultWithin<TeamStatus>(runId, 600_000);
      expect(final.state).toBe('completed');
      const rows = final.agents.map((a) => `${a.id}:${a.name}:${a.requestedBy}:${a.state}`);
      expect(rows).toEqual([
        'manager-1:manager:operator:completed',
        'architect-1:architect:operator:completed',
        'intern-1:intern-1:operator:completed',
        'software-engineer-1:real-dev:manager-1:completed',
      ]);
      expect(fs.readFileSync(path.join(ws, 'built.txt'), 'utf8')).toBe('built\n');

      const out = (f: string) => fs.readFileSync(path.join(ws, f), 'utf8');
      expect(out('spoof-env.out')).toMatch(
        /request refused: spoof attempt: the request does not prove it comes from manager-1 .*; the proof is intern-1's/,
      );
      expect(out('spoof-env.out')).toContain('exit=1');
      expect(out('spoof-as.out')).toMatch(/unknown option '--as'[\s\S]*exit=2/);
      expect(out('spoof-done.out')).toMatch(
        /spoof attempt: the request does not prove it comes from manager-1[\s\S]*exit=1/,
      );
      expect(out('spoof-agent.out')).toMatch(/unknown option '--agent'[\s\S]*exit=2/);

      const audit = await readAuditTrail({ outputsDir: t.config.outputsDir, runId });
      const spoofs = audit.filter((e) => e.kind === 'spoof_attempt');
      expect(spoofs.find((e) => e.details.source === 'update' && e.details.by === 'intern-1')).toMatchObject({
        actor: 'intern-1',
        details: { claimed: 'manager-1', request: { name: 'spoof-env' } },
      });
      expect(spoofs.find((e) => e.details.source === 'taskDone')).toMatchObject({
        details: { claimed: 'manager-1' },
      });
      const forgedNames = spoofs.map((e) => (e.details.request as { name?: string }).name);
      expect(forgedNames).toEqual(expect.arrayContaining(['forged', 'no-proof', 'forged-signal']));
      expect(audit.filter((e) => e.kind === 'spawn').map((e) => e.details.name)).not.toContain('spoof-env');

      // The secrets: 0600 files, each only in its own agent's environment, never in history.
      const keyOf = (id: string) => {
        const file = path.join(t.config.outputsDir, runId, 'keys', `${id}.key`);
        expect(fs.statSync(file).mode & 0o777).toBe(0o600);
        return fs.readFileSync(file, 'utf8').trim();
      };
      const keys = final.agents.map((a) => keyOf(a.id));
      const internEnv = out('intern.env');
      expect(internEnv).toContain(`ORCHESTRATOR_AGENT_KEY=${keyOf('intern-1')}`);
      expect(internEnv).not.toContain(keyOf('manager-1'));
      // What `temporal workflow show -o json` prints, with every base64 payload decoded as well.
      const histories = [runId, ...final.agents.map((a) => a.workflowId)].map((id) => {
        const text = execFileSync(
          TEMPORAL,
          ['workflow', 'show', '--workflow-id', id, '--address', t.config.temporal.address, '-o', 'json'],
          { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
        );
        const decoded = [...text.matchAll(/"data":\s*"([A-Za-z0-9+/=]+)"/g)].map((m) =>
          Buffer.from(m[1]!, 'base64').toString('utf8'),
        );
        return [text, ...decoded].join('\n');
      });
      expect(histories[0]).toContain('"proof"');
      for (const k of keys) for (const h of histories) expect(h).not.toContain(k);

      const verify = await runCli(['governance', 'audit', '--run', runId, '--verify'], cliEnv(t));
      expect(verify.stdout, verify.stderr).toMatch(
        new RegExp(`^intact, ${audit.length} entries, head [0-9a-f]{64}`),
      );
    },
    SLOW,
  );
});

describe('a resent request', () => {
  it(
    'with a proof its sender used a few requests back is answered as the original; the same proof on a new request is a spoof attempt',
    async () => {
      // The server resends an update completed beside a continue-as-new to the next execution, after its
      // sender has moved on (temporalio/temporal#6375). Here the resend is made by hand, under a new update id.
      const ws = tempDir('orch-trust-resend-');
      const input = await startTeam(t.client, {
        goal: 'Resend',
        workspace: ws,
        outputsDir: t.config.outputsDir,
        policy: loadHierarchyPolicy(undefined, { agent: { completionGraceS: 2 } }),
        backend: 'script',
        taskQueue: t.taskQueue,
        instructions: {
          manager: 'while [ ! -e release ]; do sleep 1; done',
          architect: 'true',
          'software-engineer': 'true',
        },
      });
      const { runId } = input;
      const handle = t.client.workflow.getHandle(runId);
      const keyFile = path.join(t.config.outputsDir, runId, 'keys', 'manager-1.key');
      // Running: its capability is on record (the key file is written just before).
      await waitFor(
        async () =>
          (await teamStatus(t.client, runId)).agents.some(
            (a) => a.id === 'manager-1' && a.state === 'running',
          ),
        'the manager running',
        120_000,
      );
      const key = fs.readFileSync(keyFile, 'utf8').trim();
      const request = (name: string, used: number): SpawnRequest => ({
        role: 'software-engineer',
        name,
        instructions: 'true',
        requestedBy: 'manager-1',
        proof: capabilityProof(key, 'team', used)!,
      });
      const send = (req: SpawnRequest, updateId: string) =>
        handle.executeUpdate(requestAgentUpdate, { args: [req], updateId });
      const first = await send(request('first', 0), 'first');
      const second = await send(request('second', 1), 'second');
      await send(request('third', 2), 'third');
      expect([first.duplicate, second.duplicate]).toEqual([false, false]);
      // Resent two requests later: the original's answer, no second agent.
      const again = await send(request('first', 0), 'first-resent');
      expect(again).toEqual({ ...first, state: again.state, duplicate: false });
      // The same used proof on a request never made: refused, on record as a spoof attempt.
      const reused = await send(request('new-name', 0), 'reused').catch((e: unknown) => e);
      expect(String((reused as Error).cause ?? reused)).toMatch(
        /spoof attempt: the request does not prove it comes from manager-1 \(the capability proof was used before/,
      );
      // The chain goes on from where it was.
      expect((await send(request('fourth', 3), 'fourth')).duplicate).toBe(false);
      fs.writeFileSync(path.join(ws, 'release'), '');
      const final = await resultWithin<TeamStatus>(runId, 600_000);
      expect(final.agents.map((a) => a.name).sort()).toEqual(
        ['architect', 'first', 'fourth', 'manager', 'second', 'third'].sort(),
      );
      expect(final.refusals.map((r) => r.request.name)).toEqual(['new-name']);
    },
    SLOW,
  );
});

describe('governance an intake can tighten but not loosen', () => {
  it(
    'an intake disabling a mandatory gate, or naming an unknown client, is refused before any run starts',
    async () => {
      const dir = tempDir('orch-trust-gov-');
      const ws = path.join(dir, 'ws');
      const disabling = waitingIntake(
        dir,
        '/nonexistent',
        ['    gates: [{ id: no-private-keys, enabled: false }, { id: license-header, enabled: false }]'],
        'acme-corp',
      );
      const refused = await runCli(['run', 'start', '--intake', disabling, '--workspace', ws], cliEnv(t));
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        /phases\[0\]\.gates\[0\]: gate "no-private-keys" is mandatory \(.*config\/governance\/universal\.yaml\): it may not be disabled/,
      );
      expect(fs.existsSync(ws)).toBe(false);
      expect(fs.readdirSync(t.config.outputsDir).some((d) => d.startsWith('bounded-'))).toBe(false);

      const typo = await runCli(['governance', 'validate', '--client', 'acme-crop'], cliEnv(t));
      expect(typo.code).toBe(2);
      expect(typo.stderr).toContain('unknown client "acme-crop"; known clients: acme-corp');
      const unknown = await runCli(
        ['run', 'start', '--intake', waitingIntake(dir, '/nonexistent', [], 'acme-crop'), '--workspace', ws],
        cliEnv(t),
      );
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/project\.client: unknown client "acme-crop"; known clients: acme-corp/);
      expect(fs.existsSync(ws)).toBe(false);
    },
    SLOW,
  );
});

describe('validators see the workspace only', () => {
  it(
    "a validator gate on **/* reports only the workspace's files, never .git/ or .orchestrator/",
    async () => {
      const dir = tempDir('orch-trust-glob-');
      const ws = path.join(dir, 'repo');
      fs.mkdirSync(path.join(ws, '.orchestrator'), { recursive: true });
      execFileSync('git', ['init', '-q'], { cwd: ws });
      fs.writeFileSync(path.join(ws, 'README.md'), '# mine\n');
      // The forbidden text only where a validator must never look.
      fs.writeFileSync(path.join(ws, '.git', 'description'), 'FORBIDDEN-MARK\n');
      fs.writeFileSync(path.join(ws, '.orchestrator', 'notes.txt'), 'FORBIDDEN-MARK\n');
      const intake = path.join(dir, 'intake.yaml');
      fs.writeFileSync(
        intake,
        [
          'project: { name: globbed }',
          'phases:',
          '  - name: build',
          `    agents: [{ role: w, backend: script, command: [sh, -c, 'mkdir -p src && echo a > a.txt && echo b > src/b.txt'] }]`,
          '    artifacts: []',
          "    gates: [{ id: marks, kind: validator, glob: '**/*', must_not_contain: FORBIDDEN-MARK, on_fail: fail }]",
        ].join('\n'),
      );
      const runId = `globbed-${Math.random().toString(36).slice(2, 8)}`;
      const r = await runCli(
        ['run', 'start', '--intake', intake, '--workspace', ws, '--run-id', runId, '--wait'],
        cliEnv(t),
      );
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      const audit = await readAuditTrail({ outputsDir: t.config.outputsDir, runId });
      const gate = audit.find(
        (e) => e.kind === 'gate' && e.details.gate === 'marks' && 'passed' in e.details,
      );
      expect(gate?.details).toMatchObject({
        passed: true,
        evidence: { files_checked: 3, offending_count: 0 },
      });
      expect(fs.existsSync(path.join(ws, '.orchestrator', 'shadow.git'))).toBe(true);
    },
    SLOW,
  );
});

describe('one run per workspace', () => {
  it(
    "a busy workspace refuses a second run and a team naming the first, until it is cancelled or terminated; a run leaves the user's git status as it was",
    async () => {
      const dir = tempDir('orch-trust-ws-');
      const ws = path.join(dir, 'repo');
      fs.mkdirSync(ws);
      const git = (...args: string[]) =>
        execFileSync('git', args, {
          cwd: ws,
          encoding: 'utf8',
          env: {
            ...process.env,
            GIT_AUTHOR_NAME: 'u',
            GIT_AUTHOR_EMAIL: 'u@x',
            GIT_COMMITTER_NAME: 'u',
            GIT_COMMITTER_EMAIL: 'u@x',
          },
        });
      git('init', '-q');
      fs.writeFileSync(path.join(ws, 'README.md'), '# mine\n');
      fs.writeFileSync(path.join(ws, 'draft.txt'), 'not committed\n');
      git('add', 'README.md');
      git('commit', '-qm', 'init');
      const before = git('status', '--porcelain');
      const go = goFile();
      const intake = waitingIntake(dir, go);
      const env = cliEnv(t);
      const start = async (runId: string) => {
        const r = await runCli(
          ['run', 'start', '--intake', intake, '--workspace', ws, '--run-id', runId],
          env,
        );
        return r;
      };
      const closed = (runId: string) =>
        waitFor(
          async () => {
            const d = await t.client.workflow.getHandle(runId).describe();
            return d.status.name !== 'RUNNING' && d.status.name;
          },
          `${runId} to close`,
          120_000,
        );

      const suffix = Math.random().toString(36).slice(2, 8);
      const first = `hold-a-${suffix}`;
      expect((await start(first)).code).toBe(0);
      const second = await start(`hold-b-${suffix}`);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(
        `workspace ${ws} is held by run ${first}, which is still running: wait for it to finish, stop it with \`temporal workflow cancel --workflow-id ${first}\``,
      );
      const team = await runCli(['team', 'start', 'intrude', '--backend', 'script', '--workspace', ws], env);
      expect(team.code).toBe(1);
      expect(team.stderr).toContain(`is held by run ${first}`);

      await t.client.workflow.getHandle(first).cancel();
      expect(await closed(first)).toBe('CANCELLED');
      const third = `hold-c-${suffix}`;
      const afterCancel = await start(third);
      expect(afterCancel.code, afterCancel.stderr).toBe(0);
      expect((await start(`hold-d-${suffix}`)).stderr).toContain(`held by run ${third}`);

      execFileSync(
        TEMPORAL,
        [
          'workflow',
          'terminate',
          '--workflow-id',
          third,
          '--address',
          t.config.temporal.address,
          '--reason',
          'test',
        ],
        {
          stdio: 'ignore',
        },
      );
      expect(await closed(third)).toBe('TERMINATED');
      const last = `hold-e-${suffix}`;
      const afterTerminate = await start(last);
      expect(afterTerminate.code, afterTerminate.stderr).toBe(0);
      fs.writeFileSync(go, '');
      const result = await resultWithin<{ state: string }>(last);
      expect(result.state).toBe('completed');

      expect(git('status', '--porcelain')).toBe(before);
      // `run status` says how the run's agents were confined, as recorded by the worker that ran them.
      const status = await runCli(['run', 'status', last], env);
      expect(status.stdout, status.stderr).toMatch(/^sandbox: bubblewrap /m);
      expect(fs.readFileSync(path.join(ws, '.orchestrator', '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    },
    SLOW,
  );
});

describe('a tamper-evident, bounded audit trail', () => {
  it(
    'survives 1.5 MB and garbage signals, keeps 1,000+ entries readable, and --verify names an edited, deleted or inserted entry with and without a worker',
    async () => {
      const dir = tempDir('orch-trust-audit-');
      const go = goFile();
      const runId = `flood-${Math.random().toString(36).slice(2, 8)}`;
      const started = await runCli(
        [
          'run',
          'start',
          '--intake',
          waitingIntake(dir, go),
          '--workspace',
          path.join(dir, 'ws'),
          '--run-id',
          runId,
        ],
        cliEnv(t),
      );
      expect(started.code, started.stderr).toBe(0);
      const handle = t.client.workflow.getHandle(runId);

      const huge = 'r'.repeat(1_500_000);
      await handle.signal(rollbackSignal, { checkpoint: 'CP1', reason: huge });
      await handle.signal(rollbackSignal, { checkpoint: 'CP1', reason: huge });
      const garbage: unknown[] = [
        null,
        42,
        'CP1',
        [],
        { checkpoint: { nested: 'x'.repeat(100_000) } },
        Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i])),
        Array.from({ length: 5000 }, (_, i) => i),
      ];
      const signals: unknown[] = [];
      for (let i = 0; i < 100; i++) signals.push(garbage[i % garbage.length]);
      for (let i = 0; i < 900; i++) signals.push({ checkpoint: `CP${i + 2}` });
      // One after another, as a misbehaving client would send them.
      for (const s of signals) await handle.signal(rollbackSignal, s as never);
      // The flood changed nothing: the run is still running (its agent still waits for "go").
      expect((await handle.describe()).status.name).toBe('RUNNING');
      fs.writeFileSync(go, '');
      const result = await resultWithin<{ state: string }>(runId);
      expect(result.state).toBe('completed');

      const file = path.join(t.config.outputsDir, runId, 'audit.jsonl');
      const entries = lines(file).map((l) => AuditEntrySchema.parse(JSON.parse(l)));
      const refused = entries.filter((e) => e.kind === 'rollback' && e.details.event === 'refused');
      expect(refused).toHaveLength(1002);
      for (const l of lines(file)) expect(l.length).toBeLessThan(AUDIT_DETAILS_LIMIT + 1_000);
      const cut = refused.filter((e) => JSON.stringify(e).includes('[cut: 1500000 chars in full, sha256 '));
      expect(cut).toHaveLength(2);

      // Every entry is readable through the CLI (the file, then the workflow's pages).
      const shown = await runCli(['governance', 'audit', '--run', runId, '--json'], cliEnv(t));
      expect(shown.code, shown.stderr).toBe(0);
      let all: AuditEntry[] = [];
      try {
        all = JSON.parse(shown.stdout) as AuditEntry[];
      } catch (err) {
        throw new Error(
          `governance audit --json printed no JSON (${(err as Error).message}; ${shown.stdout.length} chars on stdout); stderr: ${shown.stderr.slice(0, 2000)}`,
        );
      }
      expect(all.length).toBe(entries.length);
      expect(all.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));

      const verify = () => runCli(['governance', 'audit', '--run', runId, '--verify'], cliEnv(t));
      const ok = await verify();
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(
        new RegExp(`^intact, ${entries.length} entries, head ${entries.at(-1)!.hash}`),
      );
      const manifest = JSON.parse(
        fs.readFileSync(path.join(t.config.outputsDir, runId, 'manifest.json'), 'utf8'),
      );
      expect(manifest.audit).toEqual({ entries: entries.length, head: entries.at(-1)!.hash });

      const original = fs.readFileSync(file, 'utf8');
      const tamper = async (edit: (ls: string[]) => string[], expected: RegExp) => {
        fs.writeFileSync(file, edit(original.split('\n').filter(Boolean)).join('\n') + '\n');
        const r = await verify();
        fs.writeFileSync(file, original);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(expected);
      };
      const victim = entries.find((e) => e.seq >= 10 && e.details.event === 'refused')!.seq;
      const edited = (ls: string[]) =>
        ls.map((l, i) => (i === victim - 1 ? l.replace('"refused"', '"approved"') : l));
      await tamper(edited, new RegExp(`entry ${victim} was changed \\(line ${victim}\\)`));
      await tamper((ls) => ls.filter((_, i) => i !== 499), /entry 500 was removed/);
      await tamper(
        (ls) => [...ls.slice(0, 700), ls[3]!, ...ls.slice(700)],
        /an entry was inserted at line 701/,
      );
      await tamper((ls) => ls.slice(0, -1), new RegExp(`entry ${entries.length} was removed`));

      // Without a worker: the server's history is the reference.
      await stopWorker();
      const alone = await verify();
      expect(alone.code, alone.stderr).toBe(0);
      expect(alone.stdout).toMatch(new RegExp(`^intact, ${entries.length} entries`));
      expect(alone.stdout).toContain('checked against history');
      await tamper(edited, new RegExp(`entry ${victim} was changed`));
      await tamper((ls) => ls.slice(0, -1), new RegExp(`entry ${entries.length} was removed`));
    },
    SLOW,
  );
});
