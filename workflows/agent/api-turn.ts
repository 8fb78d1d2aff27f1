/**
 * The api backend: Messages API turns with a tool loop; each tool call the model makes is its own
 * activity, and a tool the agent may not use is refused here without running.
 */
import { isCancellation, patched } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { round6 } from '../../src/shared/budget';
import type { AgentWorkflowStatus } from '../../src/shared/messages';
import { addUsage, type AgentResult, type AgentStep, type Usage, ZERO_USAGE } from '../../src/shared/run';
import { isHostLost } from '../host-lost';
import type { AgentWorkflowInput } from './input';
import type { Account, Metering } from './metering';
import { describe, failureType, type TurnOutcome } from './outcome';
import { systemPrompt, taskPrompt } from './prompts';
import { model, tools } from './proxies';
import { allowedApiTools, API_TOOL_NAMES } from './tools';

/** Refused tool calls reported in the result (and so in the audit): enough to see what was tried. */
const REFUSALS_KEPT = 20;

/** api backend: Messages API turns; each tool call the model makes is its own activity. */
export async function runApi(
  input: AgentWorkflowInput,
  fileId: string,
  step: (s: AgentStep) => void,
  status: AgentWorkflowStatus,
  account: Account,
  metering: Metering,
): Promise<TurnOutcome> {
  const { agent } = input;
  const maxTurns = agent.max_turns ?? 20;
  type Block = { type: string; [k: string]: unknown };
  const messages: { role: 'user' | 'assistant'; content: string | Block[] }[] = [
    { role: 'user', content: taskPrompt(input) },
  ];
  const models: NonNullable<AgentResult['models']> = {};
  let text = '';
  let outputRef: string | undefined;
  // Histories recorded before allowed_tools was enforced ran every tool call the model made.
  const enforce = patched('api-allowed-tools');
  // Before 'api-tool-aliases', a role listing only Claude Code's names gave its api agent no tools.
  const allowed = enforce
    ? allowedApiTools(agent, API_TOOL_NAMES, patched('api-tool-aliases'))
    : API_TOOL_NAMES;
  const refusedTools: NonNullable<AgentResult['refusedTools']> = [];
  step('PLAN');
  for (let turn = 0; turn < maxTurns; turn++) {
    let r: Awaited<ReturnType<Activities['apiTurn']>>;
    try {
      r = await model(input.host, input.turnHeartbeatTimeoutS).apiTurn({
        runId: input.runId,
        agentId: fileId,
        ...(input.outputsDir ? { outputsDir: input.outputsDir } : {}),
        model: agent.model ?? 'claude-sonnet-5-5',
        system: systemPrompt(input),
        messages,
        tools: true,
        ...(enforce ? { allowedTools: allowed } : {}),
        maxTokens: 8192,
        ...(agent.timeout_s !== undefined ? { timeoutS: agent.timeout_s } : {}),
        ...(agent.hang_after_s !== undefined ? { hangAfterS: agent.hang_after_s } : {}),
        ...(metering.meter() ? { meter: metering.meter() } : {}),
      });
    } catch (err) {
      if (isCancellation(err) || isHostLost(err)) throw err;
      // Refused by a budget: nothing was served; once limits are raised the same turn is asked again.
      if (await metering.waitForRaise(err)) {
        turn -= 1;
        continue;
      }
      return {
        ok: false,
        summary: text,
        usage: ZERO_USAGE,
        costUsd: 0,
        error: describe(err),
        errorType: failureType(err),
        outputRef,
        models,
        refusedTools,
      };
    }
    const usage: Usage = {
      input_tokens: r.usage.input_tokens,
      output_tokens: r.usage.output_tokens,
      cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
      cache_read_input_tokens: r.usage.cache_read_input_tokens,
    };
    account({ usage, costUsd: r.costUsd });
    const m = (models[r.model] ??= { usage: { ...ZERO_USAGE }, costUsd: 0 });
    m.usage = addUsage(m.usage, usage);
    m.costUsd = round6(m.costUsd + r.costUsd);
    status.turns += 1;
    outputRef = r.transcriptPath;
    text = r.text || text;
    if (r.stop_reason !== 'tool_use' || r.tool_uses.length === 0) {
      step('SUMMARIZE');
      return { ok: true, summary: text, usage: ZERO_USAGE, costUsd: 0, outputRef, models, refusedTools };
    }
    step('ACT');
    messages.push({
      role: 'assistant',
      content: [
        ...(r.text ? [{ type: 'text', text: r.text }] : []),
        ...r.tool_uses.map((t) => ({ type: 'tool_use', id: t.id, name: t.name, input: t.input })),
      ],
    });
    const results = await Promise.all(
      r.tool_uses.map((t) => {
        // A tool the agent may not use is refused here, as an error the model reads; it never runs.
        if (enforce && !allowed.includes(t.name)) {
          if (refusedTools.length < REFUSALS_KEPT) refusedTools.push({ tool: t.name.slice(0, 100), turn });
          return Promise.resolve({
            ok: false,
            output: '',
            error: `tool "${t.name}" is not allowed for this agent (allowed: ${allowed.join(', ') || 'none'})`,
          });
        }
        return tools(input.host, input.turnHeartbeatTimeoutS).runTool({
          workspace: input.workspace,
          name: t.name,
          input: t.input,
          ...(enforce ? { allowedTools: allowed } : {}),
        });
      }),
    );
    status.lastTool = r.tool_uses[r.tool_uses.length - 1]?.name;
    messages.push({
      role: 'user',
      content: results.map((res, k) => ({
        type: 'tool_result',
        tool_use_id: r.tool_uses[k]!.id,
        content: res.ok ? res.output || '(no output)' : `error: ${res.error ?? 'failed'}`,
        is_error: !res.ok,
      })),
    });
  }
  return {
    ok: false,
    summary: text,
    usage: ZERO_USAGE,
    costUsd: 0,
    error: `MaxTurnsExceeded: ${maxTurns} turns`,
    errorType: 'MaxTurnsExceeded',
    outputRef,
    models,
    refusedTools,
  };
}
