/**
 * Project templates for `orchestrator init --template <name>`: folders under config/templates/ holding an
 * intake, agent definitions and a client's governance policy. The shipped universal and default policies
 * are added to the template's `governance/`, so the folder a user gets is a complete policy folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_POLICY_DIR } from './governance';

const TEMPLATES_DIR = path.join(fileURLToPath(new URL('.', import.meta.url)), 'templates');

/** The template names, sorted. */
export function listTemplates(dir = TEMPLATES_DIR): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

/** One file a template writes: its path relative to the project folder and where its content comes from. */
export interface TemplateFile {
  rel: string;
  from: string;
}

function walk(root: string, rel = ''): string[] {
  return fs
    .readdirSync(path.join(root, rel), { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? walk(root, path.join(rel, e.name)) : e.isFile() ? [path.join(rel, e.name)] : [],
    );
}

/**
 * The files of template `name` (undefined for an unknown one): the template's own, plus the shipped
 * `governance/universal.yaml` and `governance/default.yaml` unless the template has its own.
 */
export function templateFiles(name: string, dir = TEMPLATES_DIR): TemplateFile[] | undefined {
  if (!listTemplates(dir).includes(name)) return undefined;
  const root = path.join(dir, name);
  const own = walk(root).map((rel) => ({ rel, from: path.join(root, rel) }));
  const shipped = ['universal.yaml', 'default.yaml']
    .map((f) => ({ rel: path.join('governance', f), from: path.join(DEFAULT_POLICY_DIR, f) }))
    .filter((f) => !own.some((o) => o.rel === f.rel));
  return [...own, ...shipped].sort((a, b) => a.rel.localeCompare(b.rel));
}

/**
 * The policy folder an intake runs with: a `governance/` folder next to the intake (as `init` writes it)
 * replaces the shipped one, as an `agents/` folder there overrides the shipped agent definitions.
 */
export function localPolicyDir(intakeFile: string): string | undefined {
  const dir = path.join(path.dirname(path.resolve(intakeFile)), 'governance');
  return fs.existsSync(path.join(dir, 'universal.yaml')) ? dir : undefined;
}
