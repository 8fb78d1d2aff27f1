/**
 * docker-compose.yml and the Dockerfile, read as a container engine would read them (none runs here):
 * the cluster's services start in order behind health checks and one-shot setups, the Temporal server is
 * the version `make test-cluster` runs natively, every variable a worker is given is one config/env.ts
 * reads (a misspelt one would silently leave the default), the paths runs record are volumes every
 * orchestrator container mounts at the same place, and the image builds with scripts that exist.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../config/env';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; target?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[]; interval?: string; retries?: number };
  restart?: string;
  deploy?: { replicas?: string | number };
  init?: boolean;
  profiles?: string[];
  stop_grace_period?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const compose = YAML.parse(read('docker-compose.yml'), { merge: true }) as Compose;
const services = compose.services;
const svc = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
/** The services running our image: their environment is config/env.ts's. */
const OURS = ['setup', 'worker', 'cli'];

/** `${VAR:-default}` as compose resolves it with VAR unset; `${VAR}` as empty. */
function interpolate(value: string | number): string {
  return String(value).replace(
    /\$\{[A-Z0-9_]+(?::?-([^}]*))?\}/g,
    (_m, def: string | undefined) => def ?? '',
  );
}

/** The instructions of a Dockerfile: continuation lines joined, comments dropped. */
function dockerInstructions(text: string): { op: string; args: string }[] {
  const out: { op: string; args: string }[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    if (full === '') continue;
    const [op = '', ...rest] = full.split(/\s+/);
    out.push({ op: op.toUpperCase(), args: rest.join(' ') });
  }
  return out;
}

/** Source and target of a short-syntax volume, interpolated. */
function mount(v: string): { source: string; target: string } {
  const [source = '', target = ''] = interpolate(v).split(':');
  return { source, target };
}

/** Seconds of a compose duration such as `30s`, `1m30s`. */
function seconds(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(h|m|s|ms)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
  }
  return total;
}

describe('docker-compose.yml', () => {
  it('has PostgreSQL 15, the schema setup, the server native tests run, the UI, setup, workers and the CLI', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'cli',
        'postgresql',
        'setup',
        'temporal',
        'temporal-namespace',
        'temporal-schema',
        'temporal-ui',
        'worker',
      ].sort(),
    );
    expect(svc('postgresql').image).toBe('postgres:15');
    // The server `make test-cluster` builds from source (scripts/cluster.sh) is the one this runs.
    const native = /SERVER_VERSION="\$\{TEMPORAL_SERVER_VERSION:-v([0-9.]+)\}"/.exec(
      read('scripts/cluster.sh'),
    )?.[1];
    expect(native).toMatch(/^1\.\d+\.\d+$/);
    expect(svc('temporal').image).toBe(`temporalio/server:${native}`);
    for (const oneShot of ['temporal-schema', 'temporal-namespace'])
      expect(svc(oneShot).image).toMatch(
        new RegExp(`^temporalio/admin-tools:${native!.replace(/\./g, '\\.')}-`),
      );
    expect(svc('temporal-ui').image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    expect(svc('temporal').environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    // Our image, built from the Dockerfile's last stage, for every orchestrator container.
    for (const name of OURS) expect(svc(name).build).toEqual({ context: '.', target: 'runtime' });
    expect(svc('worker').command).toEqual(['worker']);
    expect(svc('setup').command).toEqual(['setup']);
  });

  it('starts each service only when what it needs is healthy or has finished its setup', () => {
    const oneShots = new Set(['temporal-schema', 'temporal-namespace', 'setup']);
    for (const [name, s] of Object.entries(services)) {
      const deps = s.depends_on ?? {};
      expect(Array.isArray(deps), `${name}: depends_on with conditions`).toBe(false);
      for (const [dep, { condition }] of Object.entries(deps as Record<string, { condition: string }>)) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        if (oneShots.has(dep)) expect(condition, `${name} → ${dep}`).toBe('service_completed_successfully');
        else {
          expect(condition, `${name} → ${dep}`).toBe('service_healthy');
          expect(svc(dep).healthcheck?.test.length, `${dep}'s healthcheck`).toBeGreaterThan(1);
        }
      }
      // A one-shot that restarted would never count as completed; a long-running one comes back.
      if (oneShots.has(name)) expect(s.restart, name).toBeUndefined();
    }
    for (const longRunning of ['postgresql', 'temporal', 'worker']) {
      expect(svc(longRunning).healthcheck?.test[0], longRunning).toMatch(/^CMD/);
      expect(svc(longRunning).restart, longRunning).toBe('unless-stopped');
    }
    // The whole chain is behind a worker: schema, server, namespace, search attributes.
    const closure = (name: string): Set<string> => {
      const seen = new Set<string>();
      const visit = (n: string) => {
        for (const d of Object.keys(svc(n).depends_on ?? {}))
          if (!seen.has(d)) {
            seen.add(d);
            visit(d);
          }
      };
      visit(name);
      return seen;
    };
    expect([...closure('worker')].sort()).toEqual(
      ['postgresql', 'setup', 'temporal', 'temporal-namespace', 'temporal-schema'].sort(),
    );
  });

  it('runs N worker replicas that shut down gracefully, with an init to reap agents', () => {
    const w = svc('worker');
    expect(String(w.deploy?.replicas)).toMatch(/^\$\{ORCHESTRATOR_WORKERS:-\d+\}$/);
    expect(Number(interpolate(w.deploy!.replicas!))).toBeGreaterThanOrEqual(2);
    expect(w.init).toBe(true);
    // Longer than the grace the worker gives in-flight steps (config/env.ts's default), or Docker kills it.
    expect(seconds(w.stop_grace_period ?? '10s') * 1000).toBeGreaterThan(
      loadConfig({}).worker.shutdownGraceMs,
    );
    expect(svc('cli').profiles).toEqual(['cli']);
  });

  it('gives our containers only variables config/env.ts reads, with values it accepts', () => {
    for (const name of OURS) {
      const env = svc(name).environment ?? {};
      for (const key of Object.keys(env)) expect(CONFIG_VARIABLES, `${name}: ${key}`).toContain(key);
      const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]));
      const config = loadConfig(resolved, {}, '/var/lib/orchestrator');
      expect(config.temporal.address).toBe('temporal:7233');
      // The paths runs record or agents resume from are volumes, not a container's own disk.
      const targets = (svc(name).volumes ?? []).map((v) => mount(v).target);
      expect(targets, `${name}: outputs`).toContain(config.outputsDir);
      expect(targets, `${name}: agent home`).toContain(config.agentHome);
      expect(targets, `${name}: workspaces`).toContain('/workspaces');
    }
    // The health check asks the endpoint the worker serves, reachable by a scraper on the network.
    const worker = loadConfig(
      Object.fromEntries(
        Object.entries(svc('worker').environment ?? {}).map(([k, v]) => [k, interpolate(v)]),
      ),
    );
    expect(worker.metrics?.bindAddress).toMatch(/^0\.0\.0\.0:\d+$/);
    // One host id for the replicas that share the workspaces volume; the checkpoint store is a volume.
    expect(worker.host.id).toBe('compose');
    expect((svc('worker').volumes ?? []).map((v) => mount(v).target)).toContain(worker.host.checkpointStore);
    const port = worker.metrics!.bindAddress.split(':')[1];
    expect(svc('worker').healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${port}/metrics`);
  });

  it('mounts the same volumes in every orchestrator container, each declared, each bind mount present', () => {
    const mounts = (name: string) => [...(svc(name).volumes ?? [])].sort();
    for (const name of OURS) expect(mounts(name), name).toEqual(mounts('worker'));
    expect(mounts('worker').map((v) => mount(v).target)).toContain('/srv/orchestrator/checkpoints');
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const { source } = mount(v);
        if (source.startsWith('./')) {
          expect(fs.existsSync(path.join(ROOT, source)), `${name}: ${source}`).toBe(true);
        } else {
          expect(Object.keys(compose.volumes), `${name}: volume ${source}`).toContain(source);
        }
      }
    }
    // The one-shots' scripts are in the folder they mount, and are valid sh.
    for (const name of ['temporal-schema', 'temporal-namespace']) {
      const script = svc(name).entrypoint?.find((a) => a.startsWith('/deploy/'));
      expect(script, name).toBeDefined();
      const file = path.join(ROOT, 'deploy/temporal', path.basename(script!));
      expect(() => execFileSync('sh', ['-n', file])).not.toThrow();
    }
  });
});

describe('Dockerfile', () => {
  const steps = dockerInstructions(read('Dockerfile'));
  const stages = steps.filter((s) => s.op === 'FROM').map((s) => /\bAS\s+(\S+)$/i.exec(s.args)?.[1]);
  const lastStage = steps.slice(steps.map((s) => s.op).lastIndexOf('FROM'));

  it('builds in stages, the last one the runtime compose asks for', () => {
    expect(stages).toEqual(['build', 'prod', 'runtime']);
  });

  it('runs only npm scripts package.json has, with flags scripts/build.mjs reads', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    const runs = steps.filter((s) => s.op === 'RUN').map((s) => s.args);
    const npmRuns = runs.flatMap((r) => [...r.matchAll(/npm run (\S+)(?: -- ([^&;]+))?/g)]);
    expect(npmRuns.map((m) => m[1])).toContain('build');
    for (const m of npmRuns) {
      expect(Object.keys(scripts), `npm run ${m[1]}`).toContain(m[1]);
      const file = /^node (scripts\/\S+)$/.exec(scripts[m[1]!] ?? '')?.[1];
      for (const flag of (m[2] ?? '').trim().split(/\s+/).filter(Boolean)) {
        expect(file, `npm run ${m[1]} -- ${flag}`).toBeDefined();
        expect(read(file!), `${file} reads ${flag}`).toContain(`'${flag}'`);
      }
    }
  });

  it('runs as a user other than root, the CLI as entry point, with variables config/env.ts reads', () => {
    const user = lastStage.filter((s) => s.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    const entry = lastStage.find((s) => s.op === 'ENTRYPOINT')?.args;
    expect(JSON.parse(entry ?? '[]')).toEqual(['node', '/app/bin/orchestrator.js']);
    expect(fs.existsSync(path.join(ROOT, 'bin/orchestrator.js'))).toBe(true);
    const envKeys = lastStage
      .filter((s) => s.op === 'ENV')
      .flatMap((s) => [...s.args.matchAll(/([A-Z_][A-Z0-9_]*)=/g)].map((m) => m[1]!));
    expect(envKeys.length).toBeGreaterThan(0);
    // Node's own variables (the worker image sets NODE_OPTIONS for its heap) are read by Node, not config.
    const nodeOwn = ['NODE_ENV', 'NODE_OPTIONS'];
    for (const k of envKeys.filter((k) => !nodeOwn.includes(k))) expect(CONFIG_VARIABLES, k).toContain(k);
  });

  it("puts claude-code's own binary on PATH", () => {
    const copy = lastStage.find((s) => s.op === 'COPY' && s.args.includes('claude-code'))?.args ?? '';
    const [, from, target] = /^--from=build \/app\/(\S+) (\S+)$/.exec(copy) ?? [];
    expect(target).toBe('/usr/local/bin/claude');
    const pkg = JSON.parse(read('node_modules/@anthropic-ai/claude-code/package.json')) as {
      bin: Record<string, string>;
    };
    expect(from).toBe(`node_modules/@anthropic-ai/claude-code/${pkg.bin.claude}`);
  });

  it('.dockerignore keeps installed and local files out, and nothing the build needs', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', 'node_modules', 'dist', '.tools', '.orchestrator', 'outputs'])
      expect(ignored).toContain(p);
    const needed = [
      'package.json',
      'package-lock.json',
      'bin',
      'scripts',
      'src',
      'workflows',
      'activities',
      'workers',
      'config',
      'examples',
    ];
    for (const p of needed) expect(ignored, p).not.toContain(p);
  });
});
