/**
 * The meter: one append-only JSONL file per agent start under `<outputs>/<run>/meter/`, one line per model
 * response the agent received, written by the metering gateway the moment the response completed (before
 * its last bytes reach the agent). It is the record of what an agent spent: the workflow charges the
 * ledger from it, whatever way the agent ended. Lines are keyed by message id, so a line written twice is
 * counted once; a torn last line (a kill mid-write) is skipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { priceServed } from '../../config/pricing';
import type { FinalMessage, WireUsage } from './usage';

/** A meter id names a file: letters, digits, `.`, `_`, `-`. */
export const MeterIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/, 'must be letters, digits, ., _ or - (a file name)');

const count = z.number().int().nonnegative();

export const MeterRecordSchema = z.object({
  v: z.literal(1),
  id: z.string(),
  at: z.string(),
  meterId: z.string(),
  runId: z.string(),
  phase: z.string(),
  agent: z.string(),
  /** The model the response named (what served it). */
  model: z.string(),
  /** The price-table model it was charged at (differs from `model` only when that is unknown). */
  pricedAs: z.string(),
  unknownModel: z.boolean().optional(),
  usage: z.object({
    input_tokens: count,
    output_tokens: count,
    cache_creation_input_tokens: count,
    cache_read_input_tokens: count,
  }),
  microUsd: count,
  tokens: count,
});
export type MeterRecord = z.infer<typeof MeterRecordSchema>;

/** Where an agent's meter lives. */
export function meterDir(outputsDir: string, runId: string): string {
  return path.join(outputsDir, runId, 'meter');
}

export function meterFile(outputsDir: string, runId: string, meterId: string): string {
  return path.join(meterDir(outputsDir, runId), `${meterId}.jsonl`);
}

/** Prices a completed response on its served model and shapes its meter line. */
export function meterRecord(
  msg: FinalMessage,
  who: { meterId: string; runId: string; phase: string; agent: string },
  at = new Date().toISOString(),
): MeterRecord {
  const price = priceServed(msg.model, msg.usage);
  const u: WireUsage = msg.usage;
  const usage = {
    input_tokens: u.input_tokens,
    output_tokens: u.output_tokens,
    cache_creation_input_tokens: u.cache_creation_input_tokens,
    cache_read_input_tokens: u.cache_read_input_tokens,
  };
  return {
    v: 1,
    id: msg.id,
    at,
    ...who,
    model: msg.model,
    pricedAs: price.pricedAs,
    ...(price.unknownModel ? { unknownModel: true } : {}),
    usage,
    microUsd: price.microUsd,
    tokens:
      usage.input_tokens +
      usage.output_tokens +
      usage.cache_creation_input_tokens +
      usage.cache_read_input_tokens,
  };
}

/**
 * Appends one line synchronously: when this returns the line is in the kernel, so a worker killed on the
 * next instruction still leaves it for the retry and the workflow to read.
 */
export function appendMeterRecord(file: string, rec: MeterRecord): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.appendFileSync(file, `${JSON.stringify(rec)}\n`);
}

/** The records of one meter file, deduplicated by message id; a missing file is an empty meter. */
export function readMeterFile(file: string): MeterRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return dedupe(parseLines(text));
}

/** Every record of a run (all its meters), deduplicated by message id. */
export function readRunMeters(outputsDir: string, runId: string): MeterRecord[] {
  const dir = meterDir(outputsDir, runId);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return dedupe(names.flatMap((n) => parseLines(fs.readFileSync(path.join(dir, n), 'utf8'))));
}

function parseLines(text: string): MeterRecord[] {
  const out: MeterRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = MeterRecordSchema.safeParse(JSON.parse(line));
      if (r.success) out.push(r.data);
    } catch {
      // A torn line: the process died mid-write, before the response reached the agent.
    }
  }
  return out;
}

function dedupe(records: MeterRecord[]): MeterRecord[] {
  const seen = new Set<string>();
  return records.filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)));
}

/** Spend of some records, per served model. */
export interface MeterSummary {
  microUsd: number;
  tokens: number;
  responses: number;
  usage: MeterRecord['usage'];
  models: Record<
    string,
    {
      microUsd: number;
      tokens: number;
      usage: MeterRecord['usage'];
      pricedAs: string;
      unknownModel?: boolean;
    }
  >;
}

const ZERO = () => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
});

function addInto(a: MeterRecord['usage'], b: MeterRecord['usage']): void {
  a.input_tokens += b.input_tokens;
  a.output_tokens += b.output_tokens;
  a.cache_creation_input_tokens += b.cache_creation_input_tokens;
  a.cache_read_input_tokens += b.cache_read_input_tokens;
}

export function summarizeMeter(records: readonly MeterRecord[]): MeterSummary {
  const out: MeterSummary = { microUsd: 0, tokens: 0, responses: 0, usage: ZERO(), models: {} };
  for (const r of records) {
    out.microUsd += r.microUsd;
    out.tokens += r.tokens;
    out.responses += 1;
    addInto(out.usage, r.usage);
    const m = (out.models[r.model] ??= {
      microUsd: 0,
      tokens: 0,
      usage: ZERO(),
      pricedAs: r.pricedAs,
      ...(r.unknownModel ? { unknownModel: true } : {}),
    });
    m.microUsd += r.microUsd;
    m.tokens += r.tokens;
    addInto(m.usage, r.usage);
  }
  return out;
}
