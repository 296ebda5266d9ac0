/**
 * The vault core's passkey escrow (docs/passkeys.md): issues sealed challenges bound to the
 * account with an expiry, registers a credential (COSE public key + passkey-wrapped K) only after
 * an assertion by that credential over such a challenge verifies, and releases the wrapped K only
 * after an assertion by a registered credential verifies. Each challenge is consumed in a
 * record batch, committed on a majority before the reply, so an assertion works once.
 */
import { base64urlnopad } from '@scure/base';
import { BkvError } from '../../shared/errors.js';
import type { ChannelPrimitives } from '../../shared/protocol/hpke-suite.js';
import { fromB64, toB64 } from '../../shared/protocol/messages.js';
import { decodePasskeyRequest, type AssertionFields, type PasskeyResponse } from '../../shared/protocol/passkey-messages.js';
import { parseCoseKey, verifyAssertion, type AssertionPolicy, type WebAuthnAssertion } from '../../shared/protocol/webauthn.js';
import { Writer } from './codec.js';
import type { CoreEnv } from './env.js';
import { CHALLENGE_ID_BYTES, PASSKEY_CHALLENGE_TTL_MS } from './passkey-state.js';
import { SEAL_NONCE_BYTES, seal, unseal } from './sealing.js';
import type { Command, CommandResult } from '../records/commands.js';

/** Which relying party and origins this fleet accepts passkey assertions from (part of its policy). */
export interface PasskeyPolicy {
  rpId: string;
  origins: string[];
}

export interface PasskeyContext {
  /** The fleet's login-state key: seals challenges as it seals recovery tickets (other label). */
  challengeKey: Uint8Array;
  /** The leader's batcher: a passkey command is committed before the reply, like a password guess. */
  records: { execute(cmd: Command): Promise<CommandResult> };
  env: CoreEnv;
  policy: PasskeyPolicy | undefined;
  primitives: ChannelPrimitives;
}

/** Wrapped K: 12-byte nonce ‖ AES-256-GCM(32 bytes) ‖ 16-byte tag. */
export const PASSKEY_WRAPPED_KEY_BYTES = 12 + 32 + 16;

function challengeAad(user: string, id: Uint8Array): Uint8Array {
  return new Writer(128).string('bkv passkey challenge v1').string(user).raw(id).finish();
}

/** Challenge = id (16 random bytes) ‖ sealed(u64 expiry), bound to the account by the AAD. */
export function issueChallenge(ctx: PasskeyContext, user: string): { challenge: Uint8Array; expires: number } {
  const id = ctx.env.random(CHALLENGE_ID_BYTES);
  const expires = ctx.env.now() + PASSKEY_CHALLENGE_TTL_MS;
  const sealed = seal(ctx.challengeKey, ctx.env.random(SEAL_NONCE_BYTES), challengeAad(user, id), new Writer(8).u64(expires).finish(), ctx.primitives);
  return { challenge: new Writer(64).raw(id).raw(sealed).finish(), expires };
}

/** Opens a challenge this fleet issued to `user`; refuses another account's, a forged or an expired one. */
export function openChallenge(ctx: PasskeyContext, user: string, challenge: Uint8Array): Uint8Array {
  if (challenge.length !== CHALLENGE_ID_BYTES + SEAL_NONCE_BYTES + 8 + 16) {
    throw new BkvError('VERIFICATION_FAILED', 'passkey assertion refused: the challenge is not one this vault issued', { check: 'challenge' });
  }
  const id = challenge.slice(0, CHALLENGE_ID_BYTES);
  let body: Uint8Array;
  try {
    body = unseal(ctx.challengeKey, challengeAad(user, id), challenge.subarray(CHALLENGE_ID_BYTES), 'passkey challenge', ctx.primitives);
  } catch {
    throw new BkvError('VERIFICATION_FAILED', 'passkey assertion refused: the challenge is not one this vault issued for this account', { check: 'challenge' });
  }
  const expires = new DataView(body.buffer, body.byteOffset, 8).getUint32(0) * 2 ** 32 + new DataView(body.buffer, body.byteOffset, 8).getUint32(4);
  if (ctx.env.now() > expires) throw new BkvError('VERIFICATION_FAILED', 'passkey assertion refused: the challenge expired; start again', { check: 'expired' });
  return id;
}

function assertionBytes(a: AssertionFields): WebAuthnAssertion {
  return {
    authenticatorData: fromB64(a.authenticatorData, 'authenticatorData'),
    clientDataJSON: fromB64(a.clientDataJSON, 'clientDataJSON'),
    signature: fromB64(a.signature, 'signature'),
  };
}

/** The challenge clientDataJSON carries, read before anything is committed (cheap rejections first). */
function claimedChallenge(clientDataJSON: Uint8Array): Uint8Array {
  try {
    const cd = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(clientDataJSON)) as { challenge?: unknown };
    return base64urlnopad.decode(String(cd.challenge));
  } catch {
    throw new BkvError('MALFORMED', 'clientDataJSON carries no challenge');
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export async function handlePasskeyRequest(ctx: PasskeyContext, account: string, plaintext: Uint8Array): Promise<PasskeyResponse> {
  const req = decodePasskeyRequest(plaintext);
  if (req.user !== account) throw new BkvError('UNAUTHORIZED', 'request names another account than the one authenticated');
  const policy = ctx.policy;
  if (!policy) throw new BkvError('USAGE', 'this vault accepts no passkeys (its policy names no relying party)');
  const ap: AssertionPolicy = { rpId: policy.rpId, origins: policy.origins, requireUserVerification: true };
  switch (req.op) {
    case 'passkey-challenge': {
      const { challenge, expires } = issueChallenge(ctx, req.user);
      return { ok: true, op: 'passkey-challenge', challenge: toB64(challenge), expires };
    }
    case 'passkey-register': {
      const credentialId = fromB64(req.credentialId, 'credentialId');
      if (credentialId.length === 0 || credentialId.length > 1023) throw new BkvError('MALFORMED', 'credential id must be 1 to 1023 bytes');
      const coseBytes = fromB64(req.publicKey, 'publicKey');
      const key = parseCoseKey(coseBytes);
      const wrappedKey = fromB64(req.wrappedKey, 'wrappedKey');
      if (wrappedKey.length !== PASSKEY_WRAPPED_KEY_BYTES) throw new BkvError('MALFORMED', 'passkey-wrapped key has the wrong length');
      // Proof of possession: the new credential signs a fresh challenge of ours for this account.
      const a = assertionBytes(req.assertion);
      const v = verifyAssertion(key, a, ap);
      const challengeId = openChallenge(ctx, req.user, v.challenge);
      const res = await ctx.records.execute({ type: 'passkey-register', ts: ctx.env.now(), user: req.user, credentialId, coseKey: coseBytes, wrappedKey, challengeId });
      if (res.kind !== 'passkey') throw new BkvError('INTERNAL', 'unexpected result for a passkey registration');
      if (res.r.status === 'replayed') throw new BkvError('CONFLICT', 'this passkey challenge was used before (replayed); start again');
      if (res.r.status === 'busy') throw new BkvError('RATE_LIMITED', 'too many passkey attempts for this account; wait a few minutes');
      if (res.r.status === 'full') throw new BkvError('CONFLICT', 'this account has the most passkeys allowed');
      if (res.r.status !== 'registered') throw new BkvError('INTERNAL', 'unexpected passkey registration status');
      return { ok: true, op: 'passkey-register', version: res.r.version, passkeys: res.r.passkeys };
    }
    case 'passkey-recover': {
      const credentialId = fromB64(req.credentialId, 'credentialId');
      const a = assertionBytes(req.assertion);
      // Everything that needs no stored key is checked before the challenge is consumed.
      const claimed = claimedChallenge(a.clientDataJSON);
      const challengeId = openChallenge(ctx, req.user, claimed);
      const res = await ctx.records.execute({ type: 'passkey-use', ts: ctx.env.now(), user: req.user, credentialId, challengeId });
      if (res.kind !== 'passkey') throw new BkvError('INTERNAL', 'unexpected result for a passkey use');
      const r = res.r;
      if (r.status === 'unknown') throw new BkvError('NOT_REGISTERED', 'no key is escrowed under this passkey for this account');
      if (r.status === 'replayed') throw new BkvError('CONFLICT', 'this passkey challenge was used before (replayed); start again');
      if (r.status === 'busy') throw new BkvError('RATE_LIMITED', 'too many passkey attempts for this account; wait a few minutes');
      if (r.status !== 'found') throw new BkvError('INTERNAL', 'unexpected passkey use status');
      const v = verifyAssertion(parseCoseKey(r.coseKey), a, ap);
      if (!sameBytes(v.challenge, claimed)) throw new BkvError('VERIFICATION_FAILED', 'passkey assertion refused: challenge mismatch', { check: 'challenge' });
      return { ok: true, op: 'passkey-recover', wrappedKey: toB64(r.wrappedKey) };
    }
  }
}
