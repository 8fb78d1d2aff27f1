/**
 * The universal gates (config/governance/universal.yaml), as the project's own policy loader reads and
 * layers them: what every run loaded from an intake gets on every phase, whatever its client. Tests that
 * build a spec by hand and must look like such a run (the fleet's other runs, a phase of many artifacts)
 * take them from here instead of copying the gate's definition.
 */
import path from 'node:path';
import { DEFAULT_POLICY_DIR, gatesForPhase, loadPolicy, type Gate } from '../../config/governance';

const UNIVERSAL = path.join(DEFAULT_POLICY_DIR, 'universal.yaml');

/** The gates universal.yaml puts on every phase (after layering, as an intake without a client gets them). */
export function universalGates(): Gate[] {
  const policy = loadPolicy();
  // A gate's origin is the file that made it mandatory: universal.yaml's gates are mandatory by default.
  const gates = gatesForPhase(policy, '*').filter(
    (g) => path.resolve(policy.mandatory[g.id] ?? '') === UNIVERSAL,
  );
  if (gates.length === 0) throw new Error(`no gates read from ${UNIVERSAL}`);
  return gates;
}
