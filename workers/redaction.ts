/**
 * The worker's last line of defence for history: every activity result and failure passes the one
 * redaction step (src/redact.ts) before Temporal records it, whatever the activity forgot.
 */
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
} from '@temporalio/worker';
import { ApplicationFailure, type Next } from '@temporalio/common';
import { redact, redactDeep } from '../src/redact';

class RedactingInbound implements ActivityInboundCallsInterceptor {
  async execute(
    input: ActivityExecuteInput,
    next: Next<ActivityInboundCallsInterceptor, 'execute'>,
  ): Promise<unknown> {
    try {
      return redactDeep(await next(input));
    } catch (err) {
      throw redactFailure(err);
    }
  }
}

/** Redacts a thrown error's message and, for ApplicationFailures, its details, in place. */
export function redactFailure(err: unknown): unknown {
  if (err instanceof Error) {
    err.message = redact(err.message);
    if (err.stack) err.stack = redact(err.stack);
  }
  if (err instanceof ApplicationFailure && err.details) {
    (err as { details: unknown[] }).details = err.details.map((d) => redactDeep(d));
  }
  return err;
}

/** Activity interceptor factory for `Worker.create({ interceptors: { activity: [...] } })`. */
export const redactingActivityInterceptors: ActivityInterceptorsFactory = () => ({
  inbound: new RedactingInbound(),
});
