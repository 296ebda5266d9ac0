import type { ChunkCipher, ChunkCipherFactory } from './cipher.js';

/** AES-256-GCM through WebCrypto (`crypto.subtle`): runs in browsers and in Node. */
export const webCryptoAesGcm: ChunkCipherFactory = async (key) => {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  const params = (nonce: Uint8Array, aad: Uint8Array): AesGcmParams => ({
    name: 'AES-GCM',
    iv: nonce as Uint8Array<ArrayBuffer>,
    additionalData: aad as Uint8Array<ArrayBuffer>,
    tagLength: 128,
  });
  const cipher: ChunkCipher = {
    async seal(nonce, plaintext, aad) {
      return [new Uint8Array(await crypto.subtle.encrypt(params(nonce, aad), k, plaintext as Uint8Array<ArrayBuffer>))];
    },
    async open(nonce, sealed, aad) {
      try {
        return [new Uint8Array(await crypto.subtle.decrypt(params(nonce, aad), k, sealed as Uint8Array<ArrayBuffer>))];
      } catch {
        return null;
      }
    },
  };
  return cipher;
};
