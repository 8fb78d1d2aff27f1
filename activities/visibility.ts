/**
 * The search attributes this worker's namespace has registered (workers/ asks the operator API once at
 * start and registers ours when it may). Workflows upsert only these: an unregistered attribute would
 * fail their workflow task, on a cluster whose operator has not run `orchestrator setup`.
 */
export function createVisibilityActivities(deps: { indexedSearchAttributes: () => Promise<string[]> }) {
  return {
    /** Names of our search attributes that the namespace has. */
    indexedSearchAttributes(): Promise<string[]> {
      return deps.indexedSearchAttributes();
    },
  };
}

export type VisibilityActivities = ReturnType<typeof createVisibilityActivities>;
