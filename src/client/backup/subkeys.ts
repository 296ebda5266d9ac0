import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../../shared/errors.js';

/** Per-backup keys derived from K and the header salt. */
export interface PayloadKeys {
  payloadKey: Uint8Array; // 32 bytes, AES-256-GCM key for every chunk
  noncePrefix: Uint8Array; // 7 bytes
}

const INFO = new TextEncoder().encode('bkv backup v1 payload');
export const NONCE_PREFIX_BYTES = 7;
export const MAX_CHUNKS = 2 ** 32;

/** HKDF-SHA256(ikm = K, salt = header salt, info = "bkv backup v1 payload") -> 39 bytes. */
export function derivePayloadKeys(key: Uint8Array, salt: Uint8Array): PayloadKeys {
  const okm = hkdf(sha256, key, salt, INFO, 32 + NONCE_PREFIX_BYTES);
  return { payloadKey: okm.slice(0, 32), noncePrefix: okm.slice(32) };
}

/** STREAM nonce: prefix (7) || chunk counter u32 BE (4) || last-chunk flag (1). */
export function chunkNonce(prefix: Uint8Array, counter: number, last: boolean): Uint8Array {
  if (!Number.isInteger(counter) || counter < 0 || counter >= MAX_CHUNKS) {
    throw new BkvError('USAGE', 'backup too large: chunk counter overflow (use a larger chunk size)');
  }
  const nonce = new Uint8Array(12);
  nonce.set(prefix, 0);
  new DataView(nonce.buffer).setUint32(NONCE_PREFIX_BYTES, counter, false);
  nonce[11] = last ? 1 : 0;
  return nonce;
}
