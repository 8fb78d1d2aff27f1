/**
 * Agent capabilities on disk (see src/shared/identity for the scheme). The secret of each team agent is
 * `<outputsDir>/<runId>/keys/<agentId>.key`, in a 0700 directory, mode 0600: not world-readable, never
 * in Temporal history (activities return only anchors, i.e. digests), and put into the environment of that
 * agent's own process only, by the activity that spawns it.
 */
import { randomBytes } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { capabilityAnchor } from '../src/shared/identity';

/** The environment variable an agent process finds its secret in. */
export const AGENT_KEY_ENV = 'ORCHESTRATOR_AGENT_KEY';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

function segment(value: string, what: string): string {
  if (!SEGMENT.test(value) || value.includes('..')) {
    throw new Error(
      `${what} must be letters, digits, ., - or _ (got ${JSON.stringify(value.slice(0, 100))})`,
    );
  }
  return value;
}

/** Where an agent's secret lives. */
export function capabilityFile(outputsDir: string, runId: string, agentId: string): string {
  return path.join(outputsDir, segment(runId, 'run id'), 'keys', `${segment(agentId, 'agent id')}.key`);
}

/**
 * Creates the agent's secret (or reads the one a previous attempt created: issuing is idempotent) and
 * returns the anchors of its two chains.
 */
export async function issueCapability(opts: {
  outputsDir: string;
  runId: string;
  agentId: string;
}): Promise<{ file: string; teamAnchor: string; agentAnchor: string }> {
  const file = capabilityFile(opts.outputsDir, opts.runId, opts.agentId);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.chmod(path.dirname(file), 0o700);
  let secret: string;
  try {
    // 'wx': never overwrite a secret an agent already holds.
    secret = randomBytes(32).toString('hex');
    await fs.writeFile(file, secret + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    secret = (await fs.readFile(file, 'utf8')).trim();
  }
  return {
    file,
    teamAnchor: capabilityAnchor(secret, 'team'),
    agentAnchor: capabilityAnchor(secret, 'agent'),
  };
}

/**
 * The environment entry that hands an agent its secret, read from its capability file at spawn time.
 * Empty without a file.
 */
export async function capabilityEnv(file: string | undefined): Promise<Record<string, string>> {
  if (!file) return {};
  const secret = (await fs.readFile(file, 'utf8')).trim();
  return { [AGENT_KEY_ENV]: secret };
}

/** {@link capabilityEnv}, for callers that build environments synchronously. */
export function capabilityEnvSync(file: string | undefined): Record<string, string> {
  if (!file) return {};
  return { [AGENT_KEY_ENV]: fsSync.readFileSync(file, 'utf8').trim() };
}

/** Replaces the secret wherever it appears in text bound for history or logs. */
export function redactSecret(text: string, secretEnv: Record<string, string>): string {
  const secret = secretEnv[AGENT_KEY_ENV];
  return secret ? text.split(secret).join('[redacted agent key]') : text;
}
