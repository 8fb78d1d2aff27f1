/** Which api tools an agent may call, from `allowed_tools`/`disallowed_tools` in either tool vocabulary. */
import { describe, expect, it } from 'vitest';
import { getAgentPreset } from '../../config/agents';
import { allowedApiTools, API_TOOL_NAMES } from '../../workflows/agent';

describe('allowedApiTools', () => {
  it('every api tool by default; api names bind exactly', () => {
    expect(allowedApiTools({}, API_TOOL_NAMES, true)).toEqual(API_TOOL_NAMES);
    expect(allowedApiTools({ allowed_tools: ['read_file', 'write_file'] }, API_TOOL_NAMES, true)).toEqual([
      'read_file',
      'write_file',
    ]);
  });

  it("Claude Code's names stand for their api equivalents (the presets speak them)", () => {
    const developer = getAgentPreset('developer');
    expect(developer.allowed_tools).toEqual(['Read', 'Write', 'Edit', 'Bash']);
    expect(allowedApiTools(developer, API_TOOL_NAMES, true)).toEqual(API_TOOL_NAMES);
    // The documentarian may read and write, never run commands.
    expect(allowedApiTools(getAgentPreset('documentarian'), API_TOOL_NAMES, true)).toEqual([
      'read_file',
      'write_file',
      'list_files',
      'search',
      'sql',
    ]);
    expect(
      allowedApiTools({ allowed_tools: ['Read', 'Bash'], disallowed_tools: ['git'] }, API_TOOL_NAMES, true),
    ).toEqual(['read_file', 'list_files', 'search', 'run_command', 'sql']);
  });

  it("an agent's tools (the registry's names) select exactly those, minus disallowed_tools", () => {
    expect(
      allowedApiTools({ tools: ['read_file', 'sql'], allowed_tools: ['Bash'] }, API_TOOL_NAMES, true),
    ).toEqual(['read_file', 'sql']);
    expect(
      allowedApiTools({ tools: ['read_file', 'sql'], disallowed_tools: ['sql'] }, API_TOOL_NAMES, true),
    ).toEqual(['read_file']);
  });

  it('without aliases (histories from before them), only api names count', () => {
    expect(allowedApiTools(getAgentPreset('developer'), API_TOOL_NAMES, false)).toEqual([]);
  });
});
