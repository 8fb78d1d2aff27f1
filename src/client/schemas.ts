/** The published JSON Schemas of the workflows' inputs, made from their zod schemas. */
import { z } from 'zod';
import { ProjectWorkflowInputSchema } from '../shared/spec';
import { TeamWorkflowInputSchema } from '../shared/team';

/** The workflows whose input has a published JSON Schema (`orchestrator schema <workflow>`). */
export const INPUT_SCHEMAS = {
  projectWorkflow: ProjectWorkflowInputSchema,
  teamWorkflow: TeamWorkflowInputSchema,
} as const;

/**
 * The JSON Schema of a workflow's input, as a client sends it (fields with defaults are optional), for
 * services that build the input in another language or check it before `temporal workflow start`.
 */
export function inputJsonSchema(workflow: keyof typeof INPUT_SCHEMAS): Record<string, unknown> {
  return z.toJSONSchema(INPUT_SCHEMAS[workflow], { io: 'input', unrepresentable: 'any' });
}
