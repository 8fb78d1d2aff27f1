/**
 * Registers the project's search attributes on a namespace (the operator API, as `temporal operator
 * search-attribute create` does) and reports which of them the namespace has. The worker does this at
 * start; `orchestrator setup` does it for an operator on an existing cluster. Workflows upsert only the
 * attributes reported here: an unregistered one would fail their workflow task.
 */
import type { temporal } from '@temporalio/proto';
import { SearchAttributes } from './shared/names';

type OperatorService = temporal.api.operatorservice.v1.OperatorService;

/**
 * `IndexedValueType` numbers (temporal.api.enums.v1): the compiled CLI cannot take named imports from
 * the CommonJS proto package, so the three we use are spelled here.
 */
const INDEXED_VALUE_TYPE = { Keyword: 2, Int: 3, Double: 4 } as const;

export interface SearchAttributeSetup {
  /** Ours that the namespace has now (registered before or just now). */
  available: string[];
  /** Ours registered by this call. */
  added: string[];
  /** Ours the namespace lacks, and why they could not be added (e.g. no operator permission). */
  missing: string[];
  error?: string;
}

/** Registers whichever of our attributes the namespace lacks; never throws for a refusal, it reports it. */
export async function ensureSearchAttributes(
  operator: OperatorService,
  namespace: string,
): Promise<SearchAttributeSetup> {
  const ours = Object.values(SearchAttributes);
  let have: Record<string, unknown>;
  try {
    have = (await operator.listSearchAttributes({ namespace })).customAttributes ?? {};
  } catch (err) {
    return { available: [], added: [], missing: ours.map((a) => a.name), error: messageOf(err) };
  }
  const lacking = ours.filter((a) => !(a.name in have));
  if (lacking.length === 0) return { available: ours.map((a) => a.name), added: [], missing: [] };
  try {
    await operator.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(lacking.map((a) => [a.name, INDEXED_VALUE_TYPE[a.type]])),
    });
    return { available: ours.map((a) => a.name), added: lacking.map((a) => a.name), missing: [] };
  } catch (err) {
    const added = new Set<string>();
    // Another worker may have registered them meanwhile: what counts is what the namespace has now.
    const now = await operator
      .listSearchAttributes({ namespace })
      .then((r) => r.customAttributes ?? {})
      .catch(() => have);
    for (const a of lacking) if (a.name in now) added.add(a.name);
    return {
      available: ours.filter((a) => a.name in now).map((a) => a.name),
      added: [...added],
      missing: ours.filter((a) => !(a.name in now)).map((a) => a.name),
      error: added.size === lacking.length ? undefined : messageOf(err),
    };
  }
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
