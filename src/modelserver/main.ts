/**
 * Runs the local model server until interrupted: `tsx src/modelserver/main.ts [--port N]`.
 * Prints the URL on stdout (for `ANTHROPIC_BASE_URL`); logs go to stderr.
 */
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../logger';
import { startModelServer } from './server';

const program = new Command('modelserver')
  .description('Local Anthropic Messages-API server with the deterministic rehearsal brain')
  .option(
    '-p, --port <port>',
    'port on 127.0.0.1 (0 = any free port)',
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new InvalidArgumentError('must be a port number 0-65535');
      return n;
    },
    0,
  )
  .option('--log-level <level>', 'pino log level', process.env.LOG_LEVEL ?? 'info')
  .parse();

const opts = program.opts<{ port: number; logLevel: string }>();
const logger = createLogger(opts.logLevel, { component: 'modelserver' });
const server = await startModelServer({ port: opts.port, logger });
process.stdout.write(`${server.url}\n`);

const stop = () => {
  void server.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
