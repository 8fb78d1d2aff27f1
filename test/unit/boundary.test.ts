/**
 * The sandbox boundary is a folder boundary, enforced twice: by ESLint (no-restricted-imports on
 * workflows/ and src/shared/) and by Temporal's bundler, which refuses Node built-ins.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../workers/worker';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WORKFLOWS_DIR = path.dirname(WORKFLOWS_PATH);
const SHARED_DIR = path.join(ROOT, 'src/shared');
const noop = (): void => undefined;
const quiet = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

/** Runs the bundler and returns its error output, so a failure names the offending module. */
async function bundleErrors(workflowsPath: string): Promise<string | undefined> {
  const errors: string[] = [];
  const logger = {
    ...quiet,
    error: (msg: string, meta?: unknown) => void errors.push(msg, JSON.stringify(meta ?? '')),
  };
  try {
    await bundleWorkflowCode({ workflowsPath, logger });
    return undefined;
  } catch (err) {
    return [String(err), ...errors].join('\n');
  }
}

/** Scratch entry points live inside the repo (git-ignored) so that @temporalio/workflow resolves. */
function scratchDir(): string {
  const base = path.join(ROOT, '.orchestrator', 'tmp');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, 'bundle-'));
}

function tsFilesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f));
}

describe('workflow bundle', () => {
  it('bundles workflows/index.ts', async () => {
    const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quiet });
    expect(code).toContain('projectWorkflow');
    // The smoke-test workflow lives in test/harness, not in the production worker.
    expect(code).not.toContain('helloWorkflow');
  });

  it('bundles every file under workflows/ and src/shared/, not only those index.ts reaches', async () => {
    const dir = scratchDir();
    const files = [...tsFilesUnder(WORKFLOWS_DIR), ...tsFilesUnder(path.join(ROOT, 'src/shared'))];
    const entry = path.join(dir, 'all.ts');
    fs.writeFileSync(
      entry,
      files.map((f, i) => `export * as m${i} from ${JSON.stringify(f.replace(/\.ts$/, ''))};`).join('\n'),
    );
    expect(await bundleErrors(entry)).toBeUndefined();
  });

  it('refuses a workflow file that imports fs, naming the module', async () => {
    const dir = scratchDir();
    const entry = path.join(dir, 'bad.ts');
    fs.writeFileSync(
      entry,
      "import fs from 'fs';\nexport async function bad(): Promise<boolean> { return fs.existsSync('/'); }\n",
    );
    expect(await bundleErrors(entry)).toMatch(/\bfs\b/);
  });
});

describe('lint boundary', () => {
  interface Probe {
    what: string;
    dir: string;
    source: string;
    /** undefined: the probe must lint clean; otherwise a sandbox rule must report a matching message. */
    fails?: RegExp;
  }
  const lines = (...l: string[]): string => l.join('\n') + '\n';
  const probes: Probe[] = [
    {
      what: 'a workflows/ file that imports fs',
      dir: WORKFLOWS_DIR,
      fails: /sandbox/,
      source: lines("import fs from 'fs';", "export const x = fs.existsSync('/');"),
    },
    {
      what: 'a workflows/ file that imports node:path',
      dir: WORKFLOWS_DIR,
      fails: /sandbox/,
      source: lines("import path from 'node:path';", 'export const x = path.sep;'),
    },
    {
      what: 'a workflows/ file that imports pino',
      dir: WORKFLOWS_DIR,
      fails: /sandbox/,
      source: lines("import pino from 'pino';", 'export const x = pino;'),
    },
    {
      what: 'a workflows/ file that imports an activity value',
      dir: WORKFLOWS_DIR,
      fails: /\*types\* only/,
      source: lines(
        "import { createActivities } from '../activities';",
        'export const x = createActivities;',
      ),
    },
    {
      what: 'a workflows/ file that imports config/',
      dir: WORKFLOWS_DIR,
      fails: /I\/O code|outside/,
      source: lines("import { loadConfig } from '../config/env';", 'export const x = loadConfig;'),
    },
    // A folder pattern cannot see where a relative path lands: '../logger' from src/shared/ is src/logger.
    {
      what: 'a src/shared/ file that imports ../logger',
      dir: SHARED_DIR,
      fails: /src\/logger, outside the deterministic sandbox/,
      source: lines("import { createLogger } from '../logger';", 'export const x = createLogger;'),
    },
    {
      what: 'a src/shared/ file that re-exports ../runs',
      dir: SHARED_DIR,
      fails: /src\/runs, outside/,
      source: lines("export { startRun } from '../runs';"),
    },
    {
      what: 'a src/shared/ file that imports types of ../devserver',
      dir: SHARED_DIR,
      fails: /src\/devserver, outside/,
      source: lines("import type { DevServer } from '../devserver';", 'export type X = DevServer;'),
    },
    {
      what: 'a workflows/ file that imports ../bench',
      dir: WORKFLOWS_DIR,
      fails: /bench\/workflows, outside/,
      source: lines("export * from '../bench/workflows';"),
    },
    {
      what: 'a workflows/ file importing @temporalio/workflow, zod, src/shared and activity types',
      dir: WORKFLOWS_DIR,
      source: lines(
        "import { sleep } from '@temporalio/workflow';",
        "import { z } from 'zod';",
        "import { WorkflowType } from '../src/shared/names';",
        "import type { Activities } from '../activities';",
        'export const x = [sleep, z, WorkflowType];',
        'export type A = Activities;',
      ),
    },
    {
      what: 'a src/shared/ file importing its neighbours, zod and activity types',
      dir: SHARED_DIR,
      source: lines(
        "import { z } from 'zod';",
        "import { WorkflowType } from './names';",
        "import type { Activities } from '../../activities';",
        'export const x = [z, WorkflowType];',
        'export type A = Activities;',
      ),
    },
  ];
  const SANDBOX_RULES = ['@typescript-eslint/no-restricted-imports', 'sandbox/relative-imports'];
  // The `__lint_probe_` prefix is known to scripts/build-lib.mjs: a probe never makes the prebuilt
  // workflow bundle stale for the workers of the temporal tier, which runs at the same time.
  const files = probes.map((p, i) => path.join(p.dir, `__lint_probe_${process.pid}_${i}.ts`));
  const messages = new Map<string, string[]>();

  // One ESLint pass over every probe: type-aware linting pays its project setup once, not per probe.
  beforeAll(async () => {
    probes.forEach((p, i) => fs.writeFileSync(files[i]!, p.source));
    try {
      for (const result of await new ESLint({ cwd: ROOT }).lintFiles(files)) {
        messages.set(
          result.filePath,
          result.messages
            .filter((m) => m.ruleId !== null && SANDBOX_RULES.includes(m.ruleId))
            .map((m) => m.message),
        );
      }
    } finally {
      for (const f of files) fs.rmSync(f, { force: true });
    }
  }, 180_000);

  probes.forEach((p, i) => {
    it(p.fails ? `fails ${p.what}` : `allows ${p.what}`, () => {
      const got = messages.get(files[i]!);
      expect(got, 'linted').toBeDefined();
      if (p.fails) expect(got!.join('\n')).toMatch(p.fails);
      else expect(got).toEqual([]);
    });
  });
});
