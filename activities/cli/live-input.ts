/**
 * A team agent's live input: the prompt is the first user line on `claude`'s stdin, and messages the
 * agent receives while it runs follow as lines of their own, read from its inbox (a query on its team
 * agent workflow). When a result arrives and no message is waiting, the input ends and `claude` exits.
 */
import type { Writable } from 'node:stream';
import type { Client } from '@temporalio/client';
import { userLine } from '../../src/claude/args';
import type { Logger } from '../../src/logger';
import { agentInboxQuery, messagePrompt, teamAgentWorkflowId } from '../../src/shared/team';
import type { ParsedClaudeTurnInput } from './contract';

type TeamInput = NonNullable<ParsedClaudeTurnInput['team']>;

export class LiveInput {
  /** The highest inbox seq given to the session. */
  deliveredSeq: number;
  private open: boolean;
  private polling: Promise<number> | undefined;
  private poller: NodeJS.Timeout | undefined;

  /** Without `team` (not a team agent) every method does nothing: the prompt goes in as plain input. */
  constructor(
    private readonly stdin: Writable | null | undefined,
    private readonly team: TeamInput | undefined,
    /** Read only for a team agent (a test's activity environment may have no client). */
    private readonly client: () => Client,
    private readonly log: Logger,
  ) {
    this.deliveredSeq = team?.afterSeq ?? 0;
    this.open = Boolean(team);
    stdin?.on('error', () => undefined);
  }

  /** Writes the prompt and starts polling the inbox. */
  start(prompt: string): void {
    if (!this.team) return;
    this.write(prompt);
    this.poller = setInterval(() => void this.poll(), this.team.pollMs);
  }

  /** The turn is over: one last look at the inbox, then the input ends unless a message arrived. */
  async resultArrived(): Promise<void> {
    if (!this.open) return;
    await this.polling;
    if ((await this.poll()) === 0) this.end();
  }

  /** Stops polling and ends the input (the process exits once it has finished its turn). */
  end(): void {
    clearInterval(this.poller);
    if (!this.open) return;
    this.open = false;
    this.stdin?.end();
  }

  private write(text: string): void {
    if (this.open) this.stdin?.write(userLine(text));
  }

  /** Passes the inbox's new messages to the session; resolves to how many. One poll at a time. */
  private poll(): Promise<number> {
    const team = this.team;
    if (!team || !this.open) return Promise.resolve(0);
    this.polling ??= this.client()
      .workflow.getHandle(teamAgentWorkflowId(team.runId, team.agentId))
      .query(agentInboxQuery, this.deliveredSeq)
      .then((messages) => {
        let written = 0;
        for (const m of messages) {
          if (m.seq <= this.deliveredSeq || !this.open) continue;
          this.write(messagePrompt(m));
          this.deliveredSeq = m.seq;
          written++;
          this.log.info({ seq: m.seq, from: m.from }, 'message passed to the live session');
        }
        return written;
      })
      .catch((err: unknown) => {
        this.log.warn({ error: (err as Error).message }, 'inbox poll failed');
        return 0;
      })
      .finally(() => (this.polling = undefined));
    return this.polling;
  }
}
