/**
 * Authenticated envelopes between members. Each member has a static X25519 identity key; for each
 * ordered pair (sender → receiver) a MAC key is derived with HKDF-SHA256 from the static-static DH
 * secret, salted with the cluster id. Every envelope names its sender and receiver and carries an
 * HMAC-SHA256 over its exact bytes, so the host can neither forge, alter, nor reflect a message.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ConsensusDecodeError } from './codec.js';
import type { MemberId } from './types.js';
import { equalBytes } from '../../shared/bytes.js';

export const ENVELOPE_VERSION = 1;
const HEADER = 3; // version, from, to
const MAC_LEN = 32;
const te = new TextEncoder();

export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface Identity {
  id: MemberId;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** Generates a member identity from 32 bytes of injected randomness. */
export function identityFromSeed(id: MemberId, seed: Uint8Array): Identity {
  if (seed.length !== 32) throw new RangeError('identity seed must be 32 bytes');
  return { id, privateKey: seed.slice(), publicKey: x25519.getPublicKey(seed) };
}

/** HMAC-SHA256(key, data). A host may inject a native implementation; the default is @noble/hashes. */
export type HmacSha256 = (key: Uint8Array, data: Uint8Array) => Uint8Array;

export const nobleHmacSha256: HmacSha256 = (key, data) => hmac(sha256, key, data);

export class PeerAuth {
  private readonly sendKeys = new Map<MemberId, Uint8Array>();
  private readonly recvKeys = new Map<MemberId, Uint8Array>();

  constructor(
    readonly self: Identity,
    peers: ReadonlyMap<MemberId, Uint8Array>,
    clusterId: Uint8Array,
    private readonly mac: HmacSha256 = nobleHmacSha256,
  ) {
    for (const [peer, pub] of peers) {
      if (peer === self.id) continue;
      const shared = x25519.getSharedSecret(self.privateKey, pub);
      this.sendKeys.set(peer, deriveKey(shared, clusterId, self.id, peer));
      this.recvKeys.set(peer, deriveKey(shared, clusterId, peer, self.id));
    }
  }

  seal(to: MemberId, body: Uint8Array): Uint8Array {
    const key = this.sendKeys.get(to);
    if (!key) throw new RangeError(`unknown peer ${to}`);
    const out = new Uint8Array(HEADER + body.length + MAC_LEN);
    out[0] = ENVELOPE_VERSION;
    out[1] = this.self.id;
    out[2] = to;
    out.set(body, HEADER);
    out.set(this.mac(key, out.subarray(0, HEADER + body.length)), HEADER + body.length);
    return out;
  }

  /** Verifies an envelope addressed to this member; returns the authenticated sender and body. */
  open(bytes: Uint8Array): { from: MemberId; body: Uint8Array } {
    if (bytes.length < HEADER + 1 + MAC_LEN) throw new ConsensusDecodeError('envelope too short');
    if (bytes[0] !== ENVELOPE_VERSION) throw new ConsensusDecodeError('unknown envelope version');
    const from = bytes[1] as number;
    const to = bytes[2] as number;
    if (to !== this.self.id) throw new AuthError('envelope addressed to another member');
    const key = this.recvKeys.get(from);
    if (!key) throw new AuthError('envelope from unknown member');
    const macAt = bytes.length - MAC_LEN;
    const expect = this.mac(key, bytes.subarray(0, macAt));
    if (!equalBytes(expect, bytes.subarray(macAt))) throw new AuthError('bad MAC');
    return { from, body: bytes.slice(HEADER, macAt) };
  }
}

function deriveKey(shared: Uint8Array, clusterId: Uint8Array, from: MemberId, to: MemberId): Uint8Array {
  const info = new Uint8Array([...te.encode('bkv-consensus-mac-v1'), from, to]);
  return hkdf(sha256, shared, clusterId, info, 32);
}
