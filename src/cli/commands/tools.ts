/** `orchestrator tools list|show`: the api agents' tools registry (activities/tools). */
import Table from 'cli-table3';
import { type Command } from 'commander';
import { toolRegistry, type ToolInfo } from '../../../activities/tools/tools';
import { CliError, printJson } from '../context';

/** `path: string, content: string` from a JSON Schema's properties; `?` marks optional ones. */
function fields(schema: Record<string, unknown>): string {
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown }>;
  const required = new Set((schema.required ?? []) as string[]);
  return Object.entries(props)
    .map(
      ([k, v]) =>
        `${k}${required.has(k) ? '' : '?'}: ${Array.isArray(v.type) ? v.type.join('|') : typeof v.type === 'string' ? v.type : 'any'}`,
    )
    .join(', ');
}

function find(name: string): ToolInfo {
  const all = toolRegistry();
  const tool = all.find((t) => t.name === name);
  if (!tool) throw new CliError(`unknown tool "${name}" (tools: ${all.map((t) => t.name).join(', ')})`, 2);
  return tool;
}

export function registerToolsCommands(program: Command): void {
  const tools = program
    .command('tools')
    .description("list and show the api agents' tools: schemas, safety class, time limit");
  tools
    .command('list')
    .description('every tool with its input schema, safety class and time limit')
    .option('--json', 'print JSON (full input and output JSON Schemas)')
    .action((opts: { json?: boolean }) => {
      const all = toolRegistry();
      if (opts.json) return printJson(all);
      const table = new Table({
        head: ['tool', 'safety', 'timeout', 'input', 'description'],
        wordWrap: true,
        colWidths: [13, 18, 9, 34, 48],
      });
      for (const t of all)
        table.push([t.name, t.safety, `${t.timeout_s} s`, fields(t.input_schema), t.description]);
      process.stdout.write(table.toString() + '\n');
    });
  tools
    .command('show <name>')
    .description("a tool's description, safety class, time limit and input and output JSON Schemas")
    .option('--json', 'print JSON')
    .action((name: string, opts: { json?: boolean }) => {
      const t = find(name);
      if (opts.json) return printJson(t);
      process.stdout.write(
        [
          `${t.name}: ${t.description}`,
          `safety: ${t.safety}`,
          `timeout: ${t.timeout_s} s`,
          `input schema: ${JSON.stringify(t.input_schema, null, 2)}`,
          `output schema: ${JSON.stringify(t.output_schema, null, 2)}`,
        ].join('\n') + '\n',
      );
    });
}
