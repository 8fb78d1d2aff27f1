/** Whether the `claude` CLI can be started here: the preflight of `orchestrator run` and the demo. */
import { ConfigError } from '../../config/errors';
import { loadExeca } from '../load-execa';
import { classifyCliFailure } from './classify';

/**
 * Checks that the CLI can be started (`claude --version`) and returns its version line. Throws a
 * {@link ConfigError} saying how to install it or set CLAUDE_PATH.
 */
export async function ensureClaudeAvailable(claudePath: string): Promise<string> {
  const execa = await loadExeca();
  const r = await execa(claudePath, ['--version'], { reject: false, timeout: 30_000, stdin: 'ignore' });
  const code = (r as { code?: string }).code;
  if (r.failed && (code === 'ENOENT' || code === 'EACCES')) {
    throw new ConfigError(classifyCliFailure({ spawnErrorCode: code, claudePath }).message);
  }
  if (r.exitCode !== 0) {
    throw new ConfigError(
      `"${claudePath} --version" failed (${r.exitCode ?? r.signal ?? 'error'}): ${String(r.stderr || r.stdout)
        .trim()
        .slice(0, 300)}`,
    );
  }
  return String(r.stdout).trim();
}
