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

/** A secret as {@link issueCapability} makes it: 32 random bytes in hex. */
const SECRET = /^[0-9a-f]{64}$/;

/**
 * Creates the agent's secret (or reads the one a previous attempt created: issuing is idempotent) and
 * returns the anchors of its two chains.
 *
 * The key file appears whole or not at all: the secret is written to a temporary file first and linked
 * into place, and a link never replaces a file. Written in place, a worker SIGKILLed between creating the
 * file and writing it left it empty; the retry read an empty secret, whose anchors anyone can compute,
 * and the agent was refused its own team endpoint (seen in the team crash test). A key file that holds no
 * secret (left so by a version that wrote in place) is no secret any agent holds: it is replaced.
 */
export async function issueCapability(opts: {
  outputsDir: string;
  runId: string;
  agentId: string;
}): Promise<{ file: string; teamAnchor: string; agentAnchor: string }> {
  const file = capabilityFile(opts.outputsDir, opts.runId, opts.agentId);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.chmod(path.dirname(file), 0o700);
  let secret = randomBytes(32).toString('hex');
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await fs.writeFile(tmp, secret + '\n', { flag: 'wx', mode: 0o600 });
  let placed = false;
  try {
    // Never overwrites a secret an agent already holds: EEXIST then.
    await fs.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const held = (await fs.readFile(file, 'utf8')).trim();
    if (SECRET.test(held)) secret = held;
    else {
      await fs.rename(tmp, file);
      placed = true;
    }
  } finally {
    if (!placed) await fs.rm(tmp, { force: true });
  }
  return {
    file,
    teamAnchor: capabilityAnchor(secret, 'team'),
    agentAnchor: capabilityAnchor(secret, 'agent'),
  };
}

/** The secret in a key file; an error naming the file when it holds none (never an empty key). */
function secretIn(file: string, text: string): string {
  const secret = text.trim();
  if (!SECRET.test(secret)) throw new Error(`capability file ${file} holds no agent secret`);
  return secret;
}

/**
 * The environment entry that hands an agent its secret, read from its capability file at spawn time.
 * Empty without a file.
 */
export async function capabilityEnv(file: string | undefined): Promise<Record<string, string>> {
  if (!file) return {};
  return { [AGENT_KEY_ENV]: secretIn(file, await fs.readFile(file, 'utf8')) };
}

/** {@link capabilityEnv}, for callers that build environments synchronously. */
export function capabilityEnvSync(file: string | undefined): Record<string, string> {
  if (!file) return {};
  return { [AGENT_KEY_ENV]: secretIn(file, fsSync.readFileSync(file, 'utf8')) };
}

/** Replaces the secret wherever it appears in text bound for history or logs. */
export function redactSecret(text: string, secretEnv: Record<string, string>): string {
  const secret = secretEnv[AGENT_KEY_ENV];
  return secret ? text.split(secret).join('[redacted agent key]') : text;
}
