/** Types of scripts/build-lib.mjs (plain JavaScript: it runs before anything is compiled). */
import type { BundleOptions } from '@temporalio/worker';

export type Fingerprint = Record<string, { size: number; mtimeMs: number; sha1: string }>;

export const ROOT: string;
export const DIST: string;
export const CLI_DIR: string;
export const CLI_MAIN: string;
/** dist/cli/help.json: `orchestrator --help` as prerendered by the build (src/cli/main.ts PrerenderedHelp). */
export const CLI_HELP: string;
export const WORKFLOWS_ENTRY: string;
export const WORKFLOW_INTERCEPTORS: string;
/** workflows/preload.ts: modules shared by every workflow of a workflow thread. */
export const WORKFLOW_PRELOAD: string;
export const WORKFLOW_BUNDLE: string;
export const TRACED_WORKFLOW_BUNDLE: string;
export const TRACING_WORKFLOW_INTERCEPTORS: string[];
export const NODE_BUILD_OPTIONS: Readonly<Record<string, unknown>>;

export function fingerprint(files: string[]): Fingerprint;
export function firstChanged(recorded: Fingerprint): string | undefined;
export function writeAtomic(file: string, data: string | Uint8Array): void;
export function cliStaleness(): string | undefined;
export function buildCli(): Promise<void>;
export function ensureCli(): Promise<void>;
export function loadCli(): Promise<{
  main: (argv: string[], manifest?: unknown[]) => Promise<void>;
  manifest: unknown[] | undefined;
}>;
export function workflowBundleStaleness(opts?: { traced?: boolean }): string | undefined;
/** `code` with every character outside ASCII written as a `\u` escape of the same meaning. */
export function asciiOnly(code: string): string;
export function buildWorkflowBundle(opts?: {
  logger?: BundleOptions['logger'];
  traced?: boolean;
}): Promise<string>;
