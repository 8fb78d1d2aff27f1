/** What processes a test left behind: by working directory or by a text in their command line. */
import fs from 'node:fs';

function pids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => p !== process.pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Live processes whose working directory is `dir` or inside it, as "pid command". */
export function processesIn(dir: string): string[] {
  const out: string[] = [];
  for (const pid of pids()) {
    let cwd: string;
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    if ((cwd === dir || cwd.startsWith(`${dir}/`)) && !isZombie(pid)) out.push(`${pid} ${cmdline(pid)}`);
  }
  return out;
}

/** Live processes whose command line contains `text`, as "pid command". */
export function processesMentioning(text: string): string[] {
  return pids()
    .filter((pid) => !isZombie(pid) && cmdline(pid).includes(text))
    .map((pid) => `${pid} ${cmdline(pid)}`);
}

/** The pids of {@link processesMentioning} lines. */
export function pidsOf(lines: readonly string[]): number[] {
  return lines.map((l) => Number(l.split(' ', 1)[0]));
}

/** Sends `signal` to each pid; one gone already is fine. */
export function signalEach(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
}

/** A process's environment (Linux /proc; readable for one's own or, as root, any process); {} when gone. */
export function environOf(pid: number): Record<string, string> {
  let raw: string;
  try {
    raw = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const kv of raw.split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** Live processes whose environment has the variable `name`, with that environment. */
export function processesWithEnv(name: string): { pid: number; env: Record<string, string> }[] {
  return pids()
    .filter((pid) => !isZombie(pid))
    .map((pid) => ({ pid, env: environOf(pid) }))
    .filter((p) => name in p.env);
}

/** Whether a process (host pid) is alive: exists and is not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`) && !isZombie(pid);
}
