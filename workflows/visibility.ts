/**
 * Applies what src/shared/visibility decides: a workflow's search attributes (upserted only when they
 * change, and only those the namespace has registered) and its current details, which the Web UI shows
 * on the run's page. Details are workflow metadata, not history: setting them costs nothing on replay.
 */
import {
  patched,
  proxyLocalActivities,
  setCurrentDetails,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { VisibilityActivities } from '../activities/visibility';
import { retryPolicy } from '../src/shared/failures';
import { attributeChanges, type AttributeUpdate, type AttributeValues } from '../src/shared/visibility';

const { indexedSearchAttributes } = proxyLocalActivities<VisibilityActivities>({
  startToCloseTimeout: '10 seconds',
  retry: retryPolicy(),
});

type UpdatePair = Extract<Parameters<typeof upsertSearchAttributes>[0], unknown[]>[number];

function toPair(u: AttributeUpdate): UpdatePair {
  switch (u.key.type) {
    case 'KEYWORD':
      return { key: { name: u.key.name, type: u.key.type }, value: String(u.value) };
    case 'INT':
      return { key: { name: u.key.name, type: u.key.type }, value: Math.trunc(Number(u.value)) };
    case 'DOUBLE':
      return { key: { name: u.key.name, type: u.key.type }, value: Number(u.value) };
  }
}

/** One per workflow execution: call {@link init} first, then {@link publish} after every transition. */
export class Visibility {
  private indexed: ReadonlySet<string> = new Set();
  private last: AttributeValues = {};
  private learned = false;

  /**
   * Learns which attributes the namespace has: from `known` when the parent asked already and passed its
   * answer down (a child saves a local activity), else by asking. Executions recorded before this existed
   * never ask (the patch) and so never upsert: their histories replay unchanged. A failure to ask costs
   * only the attributes, never the run.
   */
  async init(known?: readonly string[]): Promise<void> {
    if (!patched('search-attributes')) return;
    if (known) {
      this.indexed = new Set(known);
      this.learned = true;
      return;
    }
    try {
      this.indexed = new Set(await indexedSearchAttributes());
      this.learned = true;
    } catch {
      this.indexed = new Set();
    }
  }

  /** The attributes the namespace has, as {@link init} learned them (for a child's `init`); undefined
   * when it did not learn them. */
  indexedNames(): string[] | undefined {
    return this.learned ? [...this.indexed] : undefined;
  }

  /** Sets the current details and upserts the attributes that changed since the last call. */
  publish(values: AttributeValues, details: string): void {
    setCurrentDetails(details);
    const changes = attributeChanges(values, this.last, this.indexed);
    this.last = { ...this.last, ...values };
    if (changes.length > 0) upsertSearchAttributes(changes.map(toPair));
  }
}
