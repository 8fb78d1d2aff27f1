/**
 * Who is asking: agent identities that cannot be borrowed.
 *
 * Every team agent gets a capability at spawn: a random secret written by an activity to a file only the
 * worker reads (mode 0600), and handed to the agent's own process alone, as `ORCHESTRATOR_AGENT_KEY`. The
 * secret never enters Temporal history. From it, each agent has two hash chains (Lamport one-time
 * passwords), one for requests to its team (`team`) and one for requests to its own workflow (`agent`):
 *
 *   seed = sha256("<purpose>:" + secret),  element(k) = sha256^k(seed),  anchor = element(CHAIN_LENGTH)
 *
 * The workflow stores only the anchor (a digest). The n-th request (n = 1, 2, …) carries
 * proof = element(CHAIN_LENGTH - n); the workflow checks sha256(proof) == anchor and then makes the proof
 * the new anchor. A proof is in history once it is used, and a used proof is worth nothing: the next one
 * is its preimage. So a history reader, another agent or a client that names someone else's id cannot
 * produce a valid request for that agent.
 *
 * The human operator's CLI holds no capability and acts as {@link OPERATOR}.
 *
 * Deterministic sandbox code: imports only src/shared/.
 */
import { sha256Hex } from './sha256';

/** The actor the human operator's commands are recorded as. */
export const OPERATOR = 'operator';

/** How many proofs one chain holds (requests of one purpose one agent can make). */
export const CAPABILITY_CHAIN_LENGTH = 1000;

export type CapabilityPurpose = 'team' | 'agent';

const HEX64 = /^[0-9a-f]{64}$/;

/** The secret's chain for one purpose: element(0). */
export function chainSeed(secret: string, purpose: CapabilityPurpose): string {
  return sha256Hex(`${purpose}:${secret}`);
}

/** element(k) = sha256^k(seed). */
export function chainElement(seed: string, k: number): string {
  let v = seed;
  for (let i = 0; i < k; i++) v = sha256Hex(v);
  return v;
}

/** The digest the workflow stores for a fresh capability. */
export function capabilityAnchor(secret: string, purpose: CapabilityPurpose): string {
  return chainElement(chainSeed(secret, purpose), CAPABILITY_CHAIN_LENGTH);
}

/** The proof for the request after `used` accepted ones. Undefined once the chain is spent. */
export function capabilityProof(
  secret: string,
  purpose: CapabilityPurpose,
  used: number,
): string | undefined {
  const k = CAPABILITY_CHAIN_LENGTH - used - 1;
  return k >= 0 ? chainElement(chainSeed(secret, purpose), k) : undefined;
}

/** What a workflow keeps of one agent's chain. */
export interface CapabilityState {
  /** The last proof accepted (at first: the anchor). */
  anchor: string;
  /** Proofs accepted so far. */
  used: number;
}

export type ProofCheck =
  | { ok: true; next: CapabilityState }
  /**
   * `replayed`: the proof was accepted before (a retried or copied request): the last one accepted, or
   * with `window`, one of the `window` before it.
   */
  | { ok: false; replayed: boolean; reason: string };

/**
 * How far back {@link checkProof} recognises a used proof when asked to: a request is resent (by its
 * sender, or by the server after a continue-as-new) while its sender has moved on by a few requests.
 */
export const PROOF_REPLAY_WINDOW = 16;

/**
 * Checks a proof against an agent's chain; on success returns the state after consuming it. With
 * `window` > 0, a proof used up to `window` requests before the last one is reported as replayed too
 * (the used proofs are sha256^k of the anchor; the first anchor itself is no proof).
 */
export function checkProof(state: CapabilityState, proof: unknown, window = 0): ProofCheck {
  if (typeof proof !== 'string' || !HEX64.test(proof)) {
    return { ok: false, replayed: false, reason: 'no capability proof (64 hex digits) in the request' };
  }
  if (proof === state.anchor) {
    return { ok: false, replayed: true, reason: 'the capability proof was used before (replayed)' };
  }
  if (state.used < CAPABILITY_CHAIN_LENGTH && sha256Hex(proof) === state.anchor) {
    return { ok: true, next: { anchor: proof, used: state.used + 1 } };
  }
  let older = state.anchor;
  for (let k = 1; k <= Math.min(window, state.used - 1); k++) {
    older = sha256Hex(older);
    if (proof === older)
      return { ok: false, replayed: true, reason: 'the capability proof was used before (replayed)' };
  }
  return { ok: false, replayed: false, reason: 'the capability proof does not match' };
}
