/** `orchestrator schema <workflow>`: the JSON Schema of a workflow's input, from its zod schema. */
import { type Command, InvalidArgumentError } from 'commander';
import { INPUT_SCHEMAS, inputJsonSchema } from '../../client/schemas';

type SchemaWorkflow = keyof typeof INPUT_SCHEMAS;
const WORKFLOWS = Object.keys(INPUT_SCHEMAS) as SchemaWorkflow[];

function parseWorkflow(value: string): SchemaWorkflow {
  if ((WORKFLOWS as string[]).includes(value)) return value as SchemaWorkflow;
  throw new InvalidArgumentError(`unknown workflow "${value}" (one of: ${WORKFLOWS.join(', ')})`);
}

export function registerSchemaCommand(program: Command): void {
  program
    .command('schema')
    .description("print the JSON Schema of a workflow's input (for `temporal workflow start --input`)")
    .argument('<workflow>', WORKFLOWS.join(' or '), parseWorkflow)
    .action((workflow: SchemaWorkflow) => {
      process.stdout.write(JSON.stringify(inputJsonSchema(workflow), null, 2) + '\n');
    });
}
