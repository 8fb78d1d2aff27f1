/**
 * The yaml package, required on the first parse rather than at start: a worker loads the config modules
 * that parse YAML (policies, agents, phases) long before it reads a file, and yaml is a measurable part
 * of its start (`npm run bench:startup`).
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let yaml: typeof Yaml | undefined;

/** The yaml module (CommonJS, so it loads synchronously where the parse happens). */
export function loadYaml(): typeof Yaml {
  yaml ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yaml;
}
