/**
 * The CLI as shipped: compiled into dist/cli by the build step, each command module loaded only when its
 * command runs, help from the build's manifest; and the freshness check that keeps dist/ from running
 * stale code after a developer's edit.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  CLI_HELP,
  CLI_MAIN,
  cliStaleness,
  fingerprint,
  firstChanged,
  ROOT,
} from '../../scripts/build-lib.mjs';
import {
  buildProgram,
  commandNameIn,
  describeCommands,
  prerenderHelp,
  type PrerenderedHelp,
} from '../../src/cli/main';

const exec = promisify(execFile);
const argv = (...args: string[]): string[] => ['node', 'orchestrator', ...args];

describe('lazy command loading', () => {
  it('finds the command name past global options and their values', async () => {
    const program = await buildProgram(argv('--help'), []);
    expect(commandNameIn(program, ['run', 'status'])).toBe('run');
    expect(commandNameIn(program, ['--address', 'h:1', '--task-queue', 'q', 'team', 'start'])).toBe('team');
    expect(commandNameIn(program, ['--address=h:1', 'budget'])).toBe('budget');
    expect(commandNameIn(program, ['help', 'checkpoint'])).toBe('checkpoint');
    expect(commandNameIn(program, ['--help'])).toBeUndefined();
    expect(commandNameIn(program, [])).toBeUndefined();
  });

  it('loads only the module that owns the command', async () => {
    const manifest = await describeCommands();
    const program = await buildProgram(argv('checkpoint', 'list', 'r1'), manifest);
    // run.ts registers run, checkpoint and results; nothing else is loaded.
    expect(program.commands.map((c) => c.name()).sort()).toEqual(['checkpoint', 'results', 'run']);
  });

  it('prints from the manifest exactly the help the full program prints', async () => {
    const manifest = await describeCommands();
    expect(manifest.map((e) => e.name)).toEqual(expect.arrayContaining(['run', 'team', 'worker', 'attach']));
    const lazy = await buildProgram(argv('--help'), manifest);
    const full = await buildProgram(argv('--help'));
    expect(lazy.commands.every((c) => c.commands.length === 0)).toBe(true); // placeholders only
    expect(lazy.helpInformation()).toBe(full.helpInformation());
  });

  it('prerenders --help as the full program prints it at 80 columns and on a terminal too wide to wrap', async () => {
    const help = await prerenderHelp(await describeCommands());
    const full = await buildProgram(argv('--help'));
    full.configureOutput({ getOutHelpWidth: () => 80 }); // commander's width for output that is no terminal
    expect(help.plain).toBe(full.helpInformation());
    expect(help.plain).toMatch(/^Usage: orchestrator/);
    expect(help.wide).toBeDefined();
    full.configureOutput({ getOutHelpWidth: () => help.wide!.from + 500 });
    expect(help.wide!.text).toBe(full.helpInformation());
    // One column less and commander wraps a line: `from` is where the wide text stops being right.
    full.configureOutput({ getOutHelpWidth: () => help.wide!.from - 1 });
    expect(full.helpInformation()).not.toBe(help.wide!.text);
  });

  it('loads every module for a name the manifest does not know, so commander can answer', async () => {
    const program = await buildProgram(argv('frobnicate'), await describeCommands());
    expect(program.commands.length).toBeGreaterThan(8);
  });
});

describe('the compiled CLI', () => {
  it('is current after the build step and prints help from dist/cli', async () => {
    const { stdout } = await exec(process.execPath, [path.join(ROOT, 'bin/orchestrator.js'), '--help']);
    expect(cliStaleness()).toBeUndefined();
    expect(fs.existsSync(CLI_MAIN)).toBe(true);
    expect(stdout).toMatch(/Usage: orchestrator/);
    for (const e of await describeCommands()) expect(stdout).toContain(e.term);
  });

  it('prints the prerendered --help (and -h) byte for byte as main.cjs would, to a pipe and a file', async () => {
    const bin = path.join(ROOT, 'bin/orchestrator.js');
    const viaMain = await exec(process.execPath, [
      '-e',
      `require(${JSON.stringify(CLI_MAIN)}).main(['node', 'orchestrator', '--help'], ` +
        `require(${JSON.stringify(path.join(path.dirname(CLI_MAIN), 'commands.json'))}))`,
    ]);
    const help = JSON.parse(fs.readFileSync(CLI_HELP, 'utf8')) as PrerenderedHelp;
    expect(viaMain.stdout).toBe(help.plain);
    expect((await exec(process.execPath, [bin, '--help'])).stdout).toBe(help.plain);
    expect((await exec(process.execPath, [bin, '-h'])).stdout).toBe(help.plain);
    const file = path.join(fs.mkdtempSync(path.join(ROOT, 'dist', '.help-')), 'help.txt');
    try {
      const fd = fs.openSync(file, 'w');
      await new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [bin, '--help'], { stdio: ['ignore', fd, 'inherit'] });
        child.once('error', reject);
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
      });
      fs.closeSync(fd);
      expect(fs.readFileSync(file, 'utf8')).toBe(help.plain);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('compiles zod in: no module of the build imports it, an upgrade rebuilds, and it answers as before', async () => {
    // The build's files, from main.cjs along their imports (earlier builds' chunks linger a while).
    const dist = path.dirname(CLI_MAIN);
    const files = new Set<string>();
    const walk = (name: string): void => {
      if (files.has(name)) return;
      files.add(name);
      const text = fs.readFileSync(path.join(dist, name), 'utf8');
      for (const m of text.matchAll(/["']\.\/([\w-]+\.js)["']/g)) walk(m[1]!);
    };
    walk(path.basename(CLI_MAIN));
    expect(files.size).toBeGreaterThan(10);
    for (const f of files) {
      expect(fs.readFileSync(path.join(dist, f), 'utf8'), f).not.toMatch(
        /(from |import\(|require\()\s*["']zod["'/]/,
      );
    }
    const info = JSON.parse(fs.readFileSync(path.join(dist, 'build.json'), 'utf8')) as {
      sources: Record<string, unknown>;
    };
    expect(Object.keys(info.sources)).toContain('node_modules/zod/package.json');
    // English messages (zod's default locale; the others are left out) ...
    const dir = fs.mkdtempSync(path.join(ROOT, 'dist', '.gov-'));
    try {
      fs.cpSync(path.join(ROOT, 'config/governance'), dir, { recursive: true });
      const file = path.join(dir, 'default.yaml');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^description: .*$/m, 'description: 7'));
      const bin = path.join(ROOT, 'bin/orchestrator.js');
      const failed = await exec(process.execPath, [bin, 'governance', 'validate', '--dir', dir]).then(
        () => undefined,
        (err: { code?: number; stderr?: string }) => err,
      );
      expect(failed?.code).toBe(2);
      expect(failed?.stderr).toContain('description: Invalid input: expected string, received number');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // ... and a ZodError from node_modules' copy (the one other packages load) is still one to the CLI.
    const errors = [...files].find((f) => f.startsWith('errors-'));
    expect(errors).toBeDefined();
    const script =
      `const { describeError } = await import(${JSON.stringify(path.join(dist, errors!))});` +
      `const { z } = await import('zod');` +
      `const r = z.string().safeParse(1);` +
      `process.stdout.write(JSON.stringify(describeError(r.error)));`;
    const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    expect(JSON.parse(stdout)).toEqual({
      message: 'Invalid input: expected string, received number',
      code: 2,
    });
  });

  it('loads the Temporal worker only to run one, and the client only to connect', async () => {
    // Records, at exit, which of the SDK's heavy packages were ever required.
    const probe = `
      const Module = require('node:module');
      const load = Module._load;
      const heavy = ['@temporalio/worker', '@temporalio/core-bridge', '@temporalio/client'];
      const loaded = new Set();
      Module._load = function (request, ...rest) {
        if (heavy.includes(request)) loaded.add(request);
        return load.call(this, request, ...rest);
      };
      process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify([...loaded].sort()) + '\\n'));
      process.argv.splice(1, 0, ${JSON.stringify(path.join(ROOT, 'bin/orchestrator.js'))});
      require(process.argv[1]);
    `;
    const loadedBy = async (args: string[]): Promise<string[]> => {
      // Nothing listens on port 1: a command that connects fails at once, after loading all it loads.
      const r = await exec(process.execPath, ['-e', probe, '--', ...args], {
        env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
      }).catch((err: { stderr: string }) => err);
      const line = /^LOADED (.*)$/m.exec(r.stderr);
      expect(line, `${args.join(' ')}: ${r.stderr}`).not.toBeNull();
      return JSON.parse(line![1]!) as string[];
    };
    // Clients: `run` and `team` hold the local worker of --rehearse and --local, `server` the worker command.
    for (const args of [
      ['run', 'list'],
      ['team', 'status', 'no-such-run'],
    ])
      expect(await loadedBy(args), args.join(' ')).toEqual(['@temporalio/client']);
    // Never connect.
    for (const args of [
      ['server', 'status'],
      ['phases', 'list'],
      ['tools', 'list'],
    ])
      expect(await loadedBy(args), args.join(' ')).toEqual([]);
  });

  it('keeps no tsx on the runtime path', () => {
    const dist = path.dirname(CLI_MAIN);
    const files = [
      path.join(ROOT, 'bin/orchestrator.js'),
      path.join(ROOT, 'scripts/build-lib.mjs'),
      ...fs
        .readdirSync(dist)
        .filter((f) => f.endsWith('.js') || f.endsWith('.cjs'))
        .map((f) => path.join(dist, f)),
    ];
    for (const f of files) expect(fs.readFileSync(f, 'utf8'), f).not.toMatch(/(from |import\()['"]tsx/);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
  });
});

describe('build freshness', () => {
  const rel = 'package.json';

  it('an unchanged source is current', () => {
    expect(firstChanged(fingerprint([rel]))).toBeUndefined();
  });

  it('a touched source with the same content is current (a checkout changes only mtimes)', () => {
    const fp = fingerprint([rel]);
    fp[rel] = { ...fp[rel]!, mtimeMs: 1 };
    expect(firstChanged(fp)).toBeUndefined();
  });

  it('a source whose content changed, or that is gone, is named', () => {
    const fp = fingerprint([rel]);
    expect(firstChanged({ [rel]: { ...fp[rel]!, mtimeMs: 1, sha1: '0'.repeat(40) } })).toBe(rel);
    expect(firstChanged({ [rel]: { ...fp[rel]!, size: fp[rel]!.size + 1 } })).toBe(rel);
    expect(firstChanged({ 'no/such/file.ts': fp[rel]! })).toBe('no/such/file.ts');
  });
});
