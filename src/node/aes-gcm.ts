import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { ChunkCipher, ChunkCipherFactory } from '../client/backup/cipher.js';
import { inPlaceGcm, type InPlaceGcm } from './native-aes-gcm.js';

const TAG = 16;
/**
 * node:crypto has no in-place API: each `update` returns a new buffer. Feeding it 64 KiB at a time
 * keeps every output buffer below the C allocator's mmap threshold, so the memory of earlier
 * chunks is reused instead of being mapped (and zeroed by the kernel) afresh for each chunk; on a
 * 1 GiB backup this halves the time, which was mostly page faults.
 */
const PIECE = 64 * 1024;

function updatePieces(c: { update(data: Uint8Array): Buffer }, data: Uint8Array, out: Uint8Array[]): void {
  for (let off = 0; off < data.length; off += PIECE) out.push(c.update(data.subarray(off, Math.min(off + PIECE, data.length))));
}

/** AES-256-GCM through node:crypto (OpenSSL): the fast path on Node, same interface as WebCrypto. */
export const nodeAesGcm: ChunkCipherFactory = async (key) => {
  const k = Buffer.from(key);
  const cipher: ChunkCipher = {
    seal(nonce, plaintext, aad) {
      const c = createCipheriv('aes-256-gcm', k, nonce, { authTagLength: TAG });
      c.setAAD(aad);
      const parts: Uint8Array[] = [];
      updatePieces(c, plaintext, parts);
      const fin = c.final();
      if (fin.length > 0) parts.push(fin);
      parts.push(c.getAuthTag());
      return parts;
    },
    open(nonce, sealed, aad) {
      if (sealed.length < TAG) return null;
      const d = createDecipheriv('aes-256-gcm', k, nonce, { authTagLength: TAG });
      d.setAAD(aad);
      d.setAuthTag(sealed.subarray(sealed.length - TAG));
      const parts: Uint8Array[] = [];
      updatePieces(d, sealed.subarray(0, sealed.length - TAG), parts);
      try {
        d.final();
      } catch {
        return null; // nothing decrypted is released before the tag verifies
      }
      return parts;
    },
  };
  return cipher;
};

/**
 * The same AES-256-GCM through the in-place addon (src/node/native-aes-gcm.ts): each chunk is
 * copied once into a buffer of its own (the caller's stays untouched) and sealed or opened there,
 * one allocation per chunk instead of node:crypto's two zero-filled ones and a copy per 64 KiB.
 * An opened chunk is returned only after its tag verified. Falls back to nodeAesGcm when the
 * addon is not available; same bytes either way.
 */
export const fastAesGcm: ChunkCipherFactory = async (key) => {
  const native = inPlaceGcm();
  return native.available ? inPlaceCipher(native.create(), Uint8Array.from(key)) : nodeAesGcm(key);
};

function inPlaceCipher(gcm: InPlaceGcm, key: Uint8Array): ChunkCipher {
  return {
    seal(nonce, plaintext, aad) {
      const out = Buffer.allocUnsafeSlow(plaintext.length + TAG);
      out.set(plaintext);
      gcm.start(true, key, nonce, aad);
      gcm.update(out.subarray(0, plaintext.length));
      gcm.finishSeal(out.subarray(plaintext.length));
      return [out];
    },
    open(nonce, sealed, aad) {
      if (sealed.length < TAG) return null;
      const n = sealed.length - TAG;
      const out = Buffer.allocUnsafeSlow(n);
      out.set(sealed.subarray(0, n));
      gcm.start(false, key, nonce, aad);
      gcm.update(out);
      if (!gcm.finishOpen(sealed.subarray(n))) {
        out.fill(0); // unauthenticated plaintext never leaves
        return null;
      }
      return [out];
    },
  };
}
