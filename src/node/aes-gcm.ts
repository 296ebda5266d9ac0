import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { ChunkCipher, ChunkCipherFactory } from '../client/backup/cipher.js';

const TAG = 16;

/** AES-256-GCM through node:crypto (OpenSSL): the fast path on Node, same interface as WebCrypto. */
export const nodeAesGcm: ChunkCipherFactory = async (key) => {
  const k = Buffer.from(key);
  const cipher: ChunkCipher = {
    seal(nonce, plaintext, aad) {
      const c = createCipheriv('aes-256-gcm', k, nonce, { authTagLength: TAG });
      c.setAAD(aad);
      const body = c.update(plaintext);
      const fin = c.final();
      return fin.length > 0 ? [body, fin, c.getAuthTag()] : [body, c.getAuthTag()];
    },
    open(nonce, sealed, aad) {
      if (sealed.length < TAG) return null;
      const d = createDecipheriv('aes-256-gcm', k, nonce, { authTagLength: TAG });
      d.setAAD(aad);
      d.setAuthTag(sealed.subarray(sealed.length - TAG));
      const body = d.update(sealed.subarray(0, sealed.length - TAG));
      try {
        d.final();
      } catch {
        return null;
      }
      return body;
    },
  };
  return cipher;
};
