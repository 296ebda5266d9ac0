import { BkvError } from '../../shared/errors.js';
import { noblePrimitives, type ChannelPrimitives } from '../../shared/protocol/hpke-suite.js';
import { Writer } from './codec.js';

/**
 * AEAD sealing of everything the core hands to its untrusted host for storage. The associated
 * data names what the bytes are and where they belong (purpose, index, chain link), so the host
 * can neither read them nor move, swap or splice them unnoticed.
 */
export const SEAL_NONCE_BYTES = 12;
export const SEAL_TAG_BYTES = 16;

export function sealingAad(purpose: string, index: number, link: Uint8Array = new Uint8Array(0)): Uint8Array {
  return new Writer(64).string(purpose).u64(index).bytes(link).finish();
}

/** AES-256-GCM as the sealing code needs it: the channel's primitives (@noble unless injected). */
export type SealAead = Pick<ChannelPrimitives, 'gcmSeal' | 'gcmOpen'>;

export function seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, aead: SealAead = noblePrimitives): Uint8Array {
  const ct = aead.gcmSeal(key, nonce, aad, plaintext);
  const out = new Uint8Array(nonce.length + ct.length);
  out.set(nonce);
  out.set(ct, nonce.length);
  return out;
}

export function unseal(key: Uint8Array, aad: Uint8Array, sealed: Uint8Array, what: string, aead: SealAead = noblePrimitives): Uint8Array {
  if (sealed.length < SEAL_NONCE_BYTES + SEAL_TAG_BYTES) throw new BkvError('TAMPERED', `${what} is too short to be sealed data`);
  try {
    return aead.gcmOpen(key, sealed.subarray(0, SEAL_NONCE_BYTES), aad, sealed.subarray(SEAL_NONCE_BYTES));
  } catch {
    throw new BkvError('TAMPERED', `${what} failed authentication: altered, moved or from another vault`);
  }
}

/** The authentication tag of a sealed blob, used to chain log frames together. */
export function sealTag(sealed: Uint8Array): Uint8Array {
  return sealed.slice(sealed.length - SEAL_TAG_BYTES);
}
