/**
 * Agent capabilities without a server: the hash-chain proofs a workflow checks (src/shared/identity), the
 * key file the activity writes (0600, idempotent, anchors only in its result) and the environment entry
 * that hands the secret to the agent's own process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_KEY_ENV, capabilityEnv, issueCapability, redactSecret } from '../../activities/identity';
import {
  capabilityAnchor,
  capabilityProof,
  checkProof,
  PROOF_REPLAY_WINDOW,
  type CapabilityState,
} from '../../src/shared/identity';
import { sha256Hex } from '../../src/shared/sha256';

const secret = 'a'.repeat(64);
const other = 'b'.repeat(64);

describe('capability proofs', () => {
  it('accepts each next proof once, in order', () => {
    let state: CapabilityState = { anchor: capabilityAnchor(secret, 'team'), used: 0 };
    for (let i = 0; i < 5; i++) {
      const proof = capabilityProof(secret, 'team', state.used)!;
      const r = checkProof(state, proof);
      expect(r.ok).toBe(true);
      if (r.ok) state = r.next;
      // The same proof again is a replay.
      expect(checkProof(state, proof)).toMatchObject({ ok: false, replayed: true });
    }
    expect(state.used).toBe(5);
  });

  it("refuses another agent's proof, the other chain's proof, a forged one and none", () => {
    const state: CapabilityState = { anchor: capabilityAnchor(secret, 'team'), used: 0 };
    expect(checkProof(state, capabilityProof(other, 'team', 0))).toMatchObject({
      ok: false,
      replayed: false,
    });
    expect(checkProof(state, capabilityProof(secret, 'agent', 0))).toMatchObject({ ok: false });
    expect(checkProof(state, 'f'.repeat(64))).toMatchObject({ ok: false });
    expect(checkProof(state, undefined)).toMatchObject({ ok: false });
    // What a history reader sees (the anchor, a used proof) does not give the next proof.
    expect(checkProof(state, state.anchor)).toMatchObject({ ok: false, replayed: true });
    expect(checkProof(state, sha256Hex(state.anchor))).toMatchObject({ ok: false, replayed: false });
  });

  it('with a window, knows the proofs used a few requests back as replays, and nothing else', () => {
    let state: CapabilityState = { anchor: capabilityAnchor(secret, 'team'), used: 0 };
    const used: string[] = [];
    for (let i = 0; i < PROOF_REPLAY_WINDOW + 5; i++) {
      const proof = capabilityProof(secret, 'team', state.used)!;
      const r = checkProof(state, proof, PROOF_REPLAY_WINDOW);
      if (!r.ok) throw new Error(r.reason);
      state = r.next;
      used.push(proof);
    }
    const back = (k: number) => used[used.length - 1 - k]!;
    // Without a window only the last one is a replay (the behaviour recorded histories replay).
    expect(checkProof(state, back(1))).toMatchObject({ ok: false, replayed: false });
    for (const k of [0, 1, 2, PROOF_REPLAY_WINDOW])
      expect(checkProof(state, back(k), PROOF_REPLAY_WINDOW), `proof ${k} back`).toMatchObject({
        ok: false,
        replayed: true,
      });
    // Beyond the window, the fresh chain's anchor (public, never a proof) and future proofs are no replays.
    expect(checkProof(state, back(PROOF_REPLAY_WINDOW + 1), PROOF_REPLAY_WINDOW)).toMatchObject({
      replayed: false,
    });
    const fresh: CapabilityState = { anchor: capabilityAnchor(secret, 'team'), used: 0 };
    const first = checkProof(fresh, capabilityProof(secret, 'team', 0), PROOF_REPLAY_WINDOW);
    if (!first.ok) throw new Error(first.reason);
    expect(checkProof(first.next, fresh.anchor, PROOF_REPLAY_WINDOW)).toMatchObject({ replayed: false });
    expect(
      checkProof(state, capabilityProof(secret, 'team', state.used + 1), PROOF_REPLAY_WINDOW),
    ).toMatchObject({ ok: false, replayed: false });
    // The next proof is still accepted with a window.
    expect(checkProof(state, capabilityProof(secret, 'team', state.used), PROOF_REPLAY_WINDOW).ok).toBe(true);
  });
});

describe('issueCapability', () => {
  it('writes a 0600 secret in a 0700 folder once, returns only anchors, and hands the secret to one env', async () => {
    const outputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-cap-'));
    const a = await issueCapability({ outputsDir, runId: 'team-x', agentId: 'intern-1' });
    const again = await issueCapability({ outputsDir, runId: 'team-x', agentId: 'intern-1' });
    expect(again).toEqual(a);
    expect(a.file).toBe(path.join(outputsDir, 'team-x', 'keys', 'intern-1.key'));
    expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(a.file)).mode & 0o777).toBe(0o700);
    const key = fs.readFileSync(a.file, 'utf8').trim();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(a)).not.toContain(key);
    expect(a.teamAnchor).toBe(capabilityAnchor(key, 'team'));
    expect(await capabilityEnv(a.file)).toEqual({ [AGENT_KEY_ENV]: key });
    expect(redactSecret(`env: ${AGENT_KEY_ENV}=${key}\n`, { [AGENT_KEY_ENV]: key })).not.toContain(key);
    await expect(issueCapability({ outputsDir, runId: '../escape', agentId: 'x' })).rejects.toThrow(/run id/);
  });

  it('a key file a killed write left empty is replaced, never read as a secret; no temporary file stays', async () => {
    const outputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-cap-'));
    const file = path.join(outputsDir, 'team-y', 'keys', 'eng-2.key');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // What a worker SIGKILLed between creating the file and writing it left behind (seen in CI).
    fs.writeFileSync(file, '', { mode: 0o600 });
    await expect(capabilityEnv(file)).rejects.toThrow(`capability file ${file} holds no agent secret`);
    const a = await issueCapability({ outputsDir, runId: 'team-y', agentId: 'eng-2' });
    const key = fs.readFileSync(file, 'utf8').trim();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(a.teamAnchor).toBe(capabilityAnchor(key, 'team'));
    expect(a.teamAnchor).not.toBe(capabilityAnchor('', 'team'));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(await capabilityEnv(file)).toEqual({ [AGENT_KEY_ENV]: key });
    // Issued again: the same secret, and only the key file in the folder.
    expect(await issueCapability({ outputsDir, runId: 'team-y', agentId: 'eng-2' })).toEqual(a);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['eng-2.key']);
  });
});
