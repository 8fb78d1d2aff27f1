/**
 * What an operator sees: a run in its development phase is found by `temporal workflow list --query
 * "OrchestratorPhase='development'"` and by the Web UI's filter, and its page shows the step, the phase
 * and the cost. The Web UI is the dev server's own, read by Debian's chromium (installed by `make test`).
 * Screenshots of both pages are kept next to the run's outputs for a person to look at.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRun } from '../../src/runs';
import { SearchAttributes } from '../../src/shared/names';
import { Gates, waitFor } from '../harness/gates';
import { sixPhaseSpec } from '../harness/specs';
import { createTestEnv, env, tempDir, type TestEnv } from '../harness/temporal';

const execFileP = promisify(execFile);

/** Debian's chromium; `make test` installs it (and says so loudly when it cannot). */
function chromiumPath(): string {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (fs.existsSync(p)) return p;
  throw new Error('chromium is not installed: run `make test` as root, or `apt-get install chromium`');
}

let t: TestEnv;
let browser: Browser;

beforeAll(async () => {
  t = await createTestEnv();
  await t.startWorker();
  browser = await puppeteer.launch({
    executablePath: chromiumPath(),
    // No user namespaces for chromium's own sandbox here; the page is our own dev server's UI.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

/** The page's visible text, read inside the browser (this project compiles without the DOM's types). */
function bodyText(): string {
  return (globalThis as unknown as { document: { body: { innerText: string } } }).document.body.innerText;
}

/** The visible text of the page and of its frames (the UI renders Markdown details in a frame). */
async function allText(page: Page): Promise<string> {
  const texts = await Promise.all(page.frames().map((f) => f.evaluate(bodyText).catch(() => '')));
  return texts.join('\n');
}

/** Loads `url` and waits until the page's text shows every one of `texts`; returns that text. */
async function pageShowing(page: Page, url: string, texts: string[]): Promise<string> {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  const deadline = Date.now() + 60_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await allText(page);
    if (texts.every((w) => text.includes(w))) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return text;
}

describe('the Web UI and visibility queries', () => {
  it('find a run by its phase and show its step, phase and cost', async () => {
    const ui = env('ORCH_TEST_UI_URL');
    const gates = new Gates('web-ui');
    const input = await startRun(t.client, {
      spec: sixPhaseSpec(gates, ['development']),
      workspace: tempDir('orch-ui-ws-'),
      outputsDir: t.config.outputsDir,
      taskQueue: t.taskQueue,
    });
    await waitFor(() => gates.count('development') === 1, 'the development phase running', 120_000);
    const query = `${SearchAttributes.phase.name}='development'`;

    // The operator's command, as the issue writes it (visibility is eventually consistent: poll).
    const cli = env('ORCH_TEST_TEMPORAL_CLI');
    await waitFor(
      async () => {
        const { stdout } = await execFileP(cli, [
          'workflow',
          'list',
          '--address',
          t.config.temporal.address,
          '--query',
          query,
        ]);
        return stdout.includes(input.runId);
      },
      'temporal workflow list --query to find the run',
      30_000,
    );

    // Typed values: the step is an Int, the cost a Double, the phase and state Keywords.
    const described = await t.client.workflow.getHandle(input.runId).describe();
    const attrs = described.searchAttributes;
    expect(attrs[SearchAttributes.phase.name]).toEqual(['development']);
    expect(attrs[SearchAttributes.step.name]).toEqual([4]);
    expect(attrs[SearchAttributes.state.name]).toEqual(['running']);
    expect(attrs[SearchAttributes.project.name]).toEqual(['engine test']);
    expect(attrs[SearchAttributes.checkpoint.name]).toEqual(['CP3']);
    expect(typeof attrs[SearchAttributes.costUsd.name]?.[0]).toBe('number');

    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    const shots = path.join(t.config.outputsDir, input.runId);
    fs.mkdirSync(shots, { recursive: true });

    // The list page with the same filter, as typed into the UI's query box.
    const listText = await pageShowing(
      page,
      `${ui}/namespaces/default/workflows?query=${encodeURIComponent(query)}`,
      [input.runId],
    );
    await page.screenshot({ path: path.join(shots, 'web-ui-list.png') });
    expect(listText).toContain(input.runId);
    expect(listText).toContain('projectWorkflow');

    // The run's page: its current details say the step, the phase and the cost.
    const runText = await pageShowing(
      page,
      `${ui}/namespaces/default/workflows/${encodeURIComponent(input.runId)}/${described.runId}/user-metadata`,
      ['Step 4 of 6 · development', 'Cost: $'],
    );
    await page.screenshot({ path: path.join(shots, 'web-ui-run.png'), fullPage: true });
    expect(runText).toContain('Step 4 of 6 · development');
    expect(runText).toMatch(/Cost: \$\d+\.\d{4}/);
    expect(fs.statSync(path.join(shots, 'web-ui-run.png')).size).toBeGreaterThan(10_000);

    // When the run ends, its state attribute says so.
    gates.open('development', 1);
    await t.client.workflow.getHandle(input.runId).result();
    await waitFor(
      async () => {
        const d = await t.client.workflow.getHandle(input.runId).describe();
        return d.searchAttributes[SearchAttributes.state.name]?.[0] === 'completed';
      },
      'the completed state in visibility',
      30_000,
    );
  });

  it('`orchestrator setup` finds every attribute registered on our dev server, and says so', async () => {
    const bin = path.resolve(import.meta.dirname, '../../bin/orchestrator.js');
    const { stdout } = await execFileP(process.execPath, [bin, 'setup', '--json'], {
      env: { ...process.env, TEMPORAL_ADDRESS: t.config.temporal.address, LOG_LEVEL: 'warn' },
    });
    const report = JSON.parse(stdout) as { available: string[]; added: string[]; missing: string[] };
    expect(report.missing).toEqual([]);
    expect(report.added).toEqual([]);
    expect(report.available.sort()).toEqual(
      Object.values(SearchAttributes)
        .map((a) => a.name)
        .sort(),
    );
  });
});
