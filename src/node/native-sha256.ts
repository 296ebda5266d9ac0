import * as nodeCrypto from 'node:crypto';
import { useSha256 } from '../shared/merkle/hash.js';

/**
 * Makes Merkle hashing use Node's native SHA-256 (OpenSSL, about 2.4× @noble/hashes on 65-byte
 * inputs). Node's one-shot `crypto.hash` when present (Node 20.12+), else `createHash`.
 */
export function installNativeSha256(): void {
  const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
  useSha256(
    oneShot
      ? (data) => oneShot('sha256', data, 'buffer')
      : (data) => nodeCrypto.createHash('sha256').update(data).digest(),
  );
}
