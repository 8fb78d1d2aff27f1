/**
 * The `patched()` ids asked when a run ends. Here rather than in ./workflow, which asks them, so that
 * ./checkpoint can ask them early without importing the workflow's entry.
 */

/** Guards the manifest written when a run is cancelled or fails through an error (histories before it
 * wrote none). */
export const TRUTHFUL_END_PATCH = 'run-manifest-on-every-end';

/**
 * Patch id: a completed run's last audit entries ride along with its `updateRunManifest` call (appended
 * there, idempotent by seq) instead of an `appendAudit` call of their own after it: one activity and one
 * workflow task less per run (issue 12). Histories recorded before made both calls.
 */
export const RUN_END_AUDIT_PATCH = 'run-end-carries-audit';
