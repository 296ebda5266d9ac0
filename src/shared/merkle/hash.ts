/**
 * RFC 6962 / RFC 9162 Merkle tree hashing. Browser-safe, pure functions over bytes.
 *
 *   leaf hash  = SHA-256(0x00 ‖ entry)
 *   node hash  = SHA-256(0x01 ‖ left ‖ right)
 *   empty root = SHA-256("")
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

export const HASH_SIZE = 32;

/** The SHA-256 in use: @noble/hashes (runs everywhere) unless a platform one was installed. */
let sha256: (data: Uint8Array) => Uint8Array = nobleSha256;

/**
 * Installs a faster SHA-256 (Node's native one: `src/node/native-sha256.ts`). It is checked against
 * @noble/hashes on a known input first, so a wrong implementation is refused, never used.
 */
export function useSha256(impl: (data: Uint8Array) => Uint8Array): void {
  const probe = new Uint8Array(65).map((_, i) => i);
  const a = impl(probe);
  const b = nobleSha256(probe);
  if (a.length !== 32 || a.some((v, i) => v !== b[i])) throw new Error('the SHA-256 implementation gives wrong results');
  sha256 = impl;
}

const EMPTY = nobleSha256(new Uint8Array(0));

/** The root hash of the empty tree, SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return EMPTY.slice();
}

export function leafHash(entry: Uint8Array): Uint8Array {
  const buf = new Uint8Array(entry.length + 1);
  buf[0] = 0x00;
  buf.set(entry, 1);
  return sha256(buf);
}

const nodeBuf = new Uint8Array(1 + 2 * HASH_SIZE);

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length === HASH_SIZE && right.length === HASH_SIZE) {
    nodeBuf[0] = 0x01;
    nodeBuf.set(left, 1);
    nodeBuf.set(right, 1 + HASH_SIZE);
    return sha256(nodeBuf);
  }
  const buf = new Uint8Array(1 + left.length + right.length);
  buf[0] = 0x01;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return sha256(buf);
}
