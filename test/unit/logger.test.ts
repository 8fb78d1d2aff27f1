/** Log lines: JSON for machines, readable on a terminal, and secrets redacted either way. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, logDestination, type LogFormat } from '../../src/logger';
import { sdkLogLevel } from '../../workers/runtime-logger';

const KEY = 'sk-ant-api03-' + 'x'.repeat(40);

function logOnce(format: LogFormat, isTTY: boolean): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'orch-log-')), 'log');
  const fd = fs.openSync(file, 'w');
  try {
    const logger = createLogger('info', { component: 'test' }, logDestination(format, { isTTY, fd }));
    logger.info({ runId: 'r-1', apiKey: KEY, note: `the key is ${KEY}` }, 'phase started');
    logger.flush();
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(file, 'utf8');
}

describe('logDestination', () => {
  it('writes one JSON object per line when not on a terminal', () => {
    const out = logOnce('auto', false);
    const line = JSON.parse(out.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, msg: 'phase started', runId: 'r-1', apiKey: '[redacted]' });
    expect(out).not.toContain(KEY);
  });

  it('writes readable lines on a terminal (and with LOG_FORMAT=pretty), secrets still redacted', () => {
    for (const out of [logOnce('auto', true), logOnce('pretty', false)]) {
      expect(() => JSON.parse(out.trim()) as unknown).toThrow();
      expect(out).toMatch(/INFO.*phase started/);
      expect(out).toContain('runId: "r-1"');
      expect(out).not.toContain(KEY);
    }
    expect(logOnce('json', true).trim().startsWith('{')).toBe(true);
  });
});

describe("the SDK's log lines", () => {
  it('keep their level, but the warning about activity-only workers is debug', () => {
    expect(
      sdkLogLevel({ level: 'WARN', message: 'No workflows registered, not polling for workflow tasks' }),
    ).toBe('DEBUG');
    expect(sdkLogLevel({ level: 'WARN', message: 'Worker failed to poll' })).toBe('WARN');
    expect(
      sdkLogLevel({ level: 'ERROR', message: 'No workflows registered, not polling for workflow tasks' }),
    ).toBe('ERROR');
    expect(sdkLogLevel({ level: 'INFO', message: 'Worker state changed' })).toBe('INFO');
  });
});
