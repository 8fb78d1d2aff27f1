/**
 * Rehearsal mode: any intake runs with zero tokens. A local Messages-API server on 127.0.0.1 streams SSE
 * like the real API with scripted, role-appropriate answers (including tool calls that make real file
 * edits through Claude Code's own tools), and both backends are pointed at it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AppConfig } from '../config/env';
import { startModelServer, type ModelServer } from './modelserver';

export interface Rehearsal {
  server: ModelServer;
  /** The config to give a worker: Anthropic pointed at the local server, agent HOME isolated. */
  config: AppConfig;
  close(): Promise<void>;
}

export async function startRehearsal(config: AppConfig): Promise<Rehearsal> {
  const server = await startModelServer();
  // Claude Code keeps sessions under $HOME/.claude: rehearsal sessions stay out of the user's own.
  const agentHome = path.join(config.home, 'rehearsal-home');
  fs.mkdirSync(agentHome, { recursive: true });
  return {
    server,
    config: {
      ...config,
      anthropic: { baseURL: server.url, apiKey: 'rehearsal-no-key' },
      agentHome,
    },
    close: () => server.close(),
  };
}
