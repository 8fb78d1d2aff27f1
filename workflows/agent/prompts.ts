/**
 * What a model agent is told: its system prompt (role, phase, project, requirements, handoff, skills)
 * and its task prompt.
 */
import { methodologySection } from '../../src/shared/skills';
import type { AgentWorkflowInput } from './input';

/** Prefixed to the prompt of a turn resumed after its budget was raised. */
export const BUDGET_RESUME_NOTE =
  'Note: this request was interrupted because the budget ran out; it has been raised. Continue where you left off.\n\n';

/** The instructions every model agent gets appended to its system prompt. */
export function systemPrompt(input: AgentWorkflowInput): string {
  const { agent } = input;
  return [
    // The local model server and human readers both look for these two lines.
    `Role: ${agent.role}`,
    `Phase: ${input.phase}`,
    `Project: ${input.projectName}`,
    input.requirements.length ? `Requirements:\n${input.requirements.map((r) => `- ${r}`).join('\n')}` : '',
    input.phasePrompt,
    agent.system_prompt ?? '',
    input.handoff ?? '',
    // Applied skills (resolved at run start): their methodology as ordered steps.
    methodologySection(agent.applied_skills ?? []),
  ]
    .filter(Boolean)
    .join('\n\n');
}

export function taskPrompt(input: AgentWorkflowInput): string {
  const task = input.agent.prompt ?? `Do the ${input.phase} work for this project in the current directory.`;
  const base = input.retryNote ? `${input.retryNote}\n\n${task}` : task;
  return input.passedOutput ? `${base}\n\nOutput of the previous step:\n${input.passedOutput}` : base;
}
