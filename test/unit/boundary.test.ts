/**
 * The sandbox boundary is a folder boundary, enforced twice: by ESLint (no-restricted-imports on
 * workflows/ and src/shared/) and by Temporal's bundler, which refuses Node built-ins.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../workers/worker';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WORKFLOWS_DIR = path.dirname(WORKFLOWS_PATH);
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
    expect(code).toContain('helloWorkflow');
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
  const probes: Record<string, string> = {
    'imports fs': "import fs from 'fs';\nexport const x = fs.existsSync('/');\n",
    'imports node:path': "import path from 'node:path';\nexport const x = path.sep;\n",
    'imports pino': "import pino from 'pino';\nexport const x = pino;\n",
    'imports an activity value':
      "import { createActivities } from '../activities';\nexport const x = createActivities;\n",
    'imports config/': "import { loadConfig } from '../config/env';\nexport const x = loadConfig;\n",
  };

  async function lintProbe(source: string): Promise<string[]> {
    const file = path.join(WORKFLOWS_DIR, `__lint_probe_${process.pid}.ts`);
    fs.writeFileSync(file, source);
    try {
      const [result] = await new ESLint({ cwd: ROOT }).lintFiles([file]);
      return (result?.messages ?? [])
        .filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports')
        .map((m) => m.message);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  for (const [what, source] of Object.entries(probes)) {
    it(`fails a workflows/ file that ${what}`, async () => {
      const messages = await lintProbe(source);
      expect(messages.length).toBeGreaterThan(0);
    });
  }

  it('allows @temporalio/workflow, zod, src/shared and activity types', async () => {
    const messages = await lintProbe(
      [
        "import { sleep } from '@temporalio/workflow';",
        "import { z } from 'zod';",
        "import { WorkflowType } from '../src/shared/names';",
        "import type { Activities } from '../activities';",
        'export const x = [sleep, z, WorkflowType];',
        'export type A = Activities;',
      ].join('\n') + '\n',
    );
    expect(messages).toEqual([]);
  });
});
