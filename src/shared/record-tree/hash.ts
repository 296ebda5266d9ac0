/**
 * Hashing and key-bit helpers of the record tree (docs/formats/record-tree.md). Browser-safe.
 *
 *   empty subtree = 32 zero bytes
 *   leaf          = SHA-256(0x00 ‖ key[32] ‖ valueHash[32]),  valueHash = SHA-256(value)
 *   internal node = SHA-256(0x01 ‖ left[32] ‖ right[32])
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { BkvError } from '../errors.js';

/** The SHA-256 in use: @noble/hashes (runs everywhere) unless a platform one was installed. */
let sha256: (data: Uint8Array) => Uint8Array = nobleSha256;

/**
 * Installs a faster SHA-256 for the record tree (a host passes Node's one-shot `crypto.hash`).
 * It is checked against @noble/hashes first, so a wrong implementation is refused, never used.
 */
export function useRecordTreeSha256(impl: (data: Uint8Array) => Uint8Array): void {
  for (const n of [0, 32, 65, 300]) {
    const probe = new Uint8Array(n).map((_, i) => (i * 7 + n) & 0xff);
    const a = impl(probe);
    const b = nobleSha256(probe);
    if (!(a instanceof Uint8Array) || a.length !== 32 || a.some((v, i) => v !== b[i])) {
      throw new BkvError('INTERNAL', 'the SHA-256 implementation gives wrong results');
    }
  }
  sha256 = impl;
}

export const HASH_SIZE = 32;
export const KEY_SIZE = 32;
/** Key bits: a path ends at depth 256 at the latest. */
export const MAX_DEPTH = 256;

const ZERO = new Uint8Array(HASH_SIZE);

/** The hash of an empty subtree (a fresh copy). */
export function emptyHash(): Uint8Array {
  return ZERO.slice();
}

export function isZeroHash(h: Uint8Array): boolean {
  for (let i = 0; i < h.length; i++) if (h[i] !== 0) return false;
  return true;
}

/** SHA-256 of the stored value bytes. */
export function valueHash(value: Uint8Array): Uint8Array {
  return sha256(value);
}

/**
 * One input buffer for leaf and node hashes, reused: both hash exactly 65 bytes, the SHA-256 in use
 * is synchronous and returns a fresh array, so nothing keeps or sees this buffer between calls.
 * (Allocating it per call was a third of a node hash's cost; a proof hashes one per tree level.)
 */
const input = new Uint8Array(1 + 2 * HASH_SIZE);

export function leafHash(key: Uint8Array, vh: Uint8Array): Uint8Array {
  input[0] = 0x00;
  input.set(key, 1);
  input.set(vh, 1 + KEY_SIZE);
  return sha256(input);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  input[0] = 0x01;
  input.set(left, 1);
  input.set(right, 1 + HASH_SIZE);
  return sha256(input);
}

/** Bit `i` of a key, most significant bit of byte 0 first; 0 = left, 1 = right. */
export function keyBit(key: Uint8Array, i: number): 0 | 1 {
  return (((key[i >> 3] as number) >> (7 - (i & 7))) & 1) as 0 | 1;
}

/** The number of leading bits two keys share (256 when equal). */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < KEY_SIZE; i++) {
    const x = (a[i] as number) ^ (b[i] as number);
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return MAX_DEPTH;
}

/** -1, 0 or 1 as `a` sorts before, equal to or after `b` (bytewise, which is bit order). */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < KEY_SIZE; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Byte equality (the project's one definition). */
export { equalBytes as bytesEqual } from '../bytes.js';

export function checkKey(key: Uint8Array, what = 'key'): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_SIZE) {
    throw new BkvError('USAGE', `a record-tree ${what} must be ${KEY_SIZE} bytes`);
  }
}

export function checkHash(h: Uint8Array, what = 'hash'): void {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new BkvError('USAGE', `a record-tree ${what} must be ${HASH_SIZE} bytes`);
  }
}

export { bytesToHex as toHex } from '@noble/hashes/utils.js';
