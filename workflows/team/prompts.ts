/** What a cli team agent is told at each turn: pure text from its instructions, tasks and inbox. */
import { messagePrompt, type TeamMessage, type TeamTask } from '../../src/shared/team';

/** The first turn: the requester's instructions, and where the tasks are. */
export function firstPrompt(instructions: string, dir: string): string {
  return [
    instructions.trim(),
    '',
    `Your tasks are listed in ${dir}/tasks.md. Run \`orchestrator team task done <id>\` as you finish each one.`,
  ].join('\n');
}

/** A later turn: the tasks still open. */
export function continuePrompt(tasks: readonly TeamTask[]): string {
  const open = tasks.filter((t) => t.status !== 'completed');
  const list = open.length
    ? open.map((t) => `- ${t.id} (${t.status}): ${t.text}`).join('\n')
    : '- (none listed)';
  return [
    'Some of your tasks are not completed yet:',
    list,
    '',
    'Continue with them. Run `orchestrator team task done <id>` for each task you finish, or',
    '`orchestrator team task done --all` when all your work is done.',
  ].join('\n');
}

/** Messages that arrived while no turn ran open the next prompt. */
export function withMessages(unread: readonly TeamMessage[], base: string): string {
  return unread.length ? [...unread.map(messagePrompt), '', base].join('\n') : base;
}
