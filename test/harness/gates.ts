/**
 * Script-agent helpers for engine tests. A gated script counts its invocations in a file outside the
 * workspace and waits for `gate-<n>` before doing its work, so a test decides exactly when each attempt of
 * a phase proceeds (no timing guesses).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';

/**
 * Where gate folders really live: a folder the test workers' sandbox lets script agents write
 * (`ORCHESTRATOR_SANDBOX_WRITABLE`, set by the global setup). Anywhere else the sandbox would hide it.
 */
function controlRoot(): string {
  return (process.env.ORCHESTRATOR_SANDBOX_WRITABLE ?? '').split(path.delimiter)[0] || os.tmpdir();
}

export class Gates {
  readonly dir: string;
  /** `name` only names the folder, which is created under the sandbox's writable control root. */
  constructor(name: string) {
    this.dir = path.join(controlRoot(), `${path.basename(name)}-${crypto.randomBytes(4).toString('hex')}`);
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** argv for a script agent that counts itself under `name`, waits for its gate, then runs `work` (sh). */
  script(name: string, work: string, gated = true): string[] {
    const counter = path.join(this.dir, `${name}.count`);
    const gate = path.join(this.dir, `${name}.gate-`);
    const wait = gated ? `while [ ! -f '${gate}'$n ]; do sleep 0.05; done; ` : '';
    return [
      'sh',
      '-c',
      `n=$(( $(cat '${counter}' 2>/dev/null || echo 0) + 1 )); echo $n > '${counter}'; ${wait}${work}`,
    ];
  }

  open(name: string, attempt: number): void {
    fs.writeFileSync(path.join(this.dir, `${name}.gate-${attempt}`), '');
  }

  count(name: string): number {
    try {
      return Number(fs.readFileSync(path.join(this.dir, `${name}.count`), 'utf8').trim());
    } catch {
      return 0;
    }
  }
}

/** sha256 of every file under `dir` (relative path → hash, plus mode), excluding .orchestrator/ and .git/. */
export function treeHash(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (!rel && (ent.name === '.orchestrator' || ent.name === '.git')) continue;
      const abs = path.join(dir, r);
      if (ent.isDirectory()) walk(r);
      else {
        const st = fs.statSync(abs);
        out[r] =
          `${(st.mode & 0o111) !== 0 ? 'x' : '-'}${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`;
      }
    }
  };
  walk('');
  return out;
}

/**
 * `promise`, or an error naming `what` after `timeoutMs`: a wait that would otherwise hang until the
 * test's own timeout says which step it was stuck at.
 */
export async function within<T>(
  promise: Promise<T>,
  timeoutMs: number,
  /** Read when the time is up, so it can say how things stand then. */
  what: string | (() => string),
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `fn` until it returns a truthy value or the timeout passes. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 60_000,
  /** Between two polls: shorter only for a moment that lasts tens of ms. */
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastErr instanceof Error ? `: ${lastErr.message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
