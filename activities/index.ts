/**
 * All activities, built from factories that receive their dependencies from workers/. Workflows import
 * only the *type* {@link Activities}.
 */
import type { AppConfig } from '../config/env';
import type { Logger } from '../src/logger';

export interface ActivityDeps {
  config: AppConfig;
  logger: Logger;
}

export function createActivities(deps: ActivityDeps) {
  const { logger } = deps;
  return {
    /** A trivial activity used by the smoke workflow and the foundation tests. */
    greet(name: string): Promise<string> {
      logger.info({ name }, 'greet');
      return Promise.resolve(`Hello, ${name}!`);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
