/**
 * The AEAD seam: AES-256-GCM with 12-byte nonces and 16-byte tags, as used for each chunk.
 * `seal` returns ciphertext || tag as one or more pieces (so an implementation need not copy the
 * tag onto the ciphertext); `open` returns the plaintext as one or more pieces, or null when
 * authentication fails (and then nothing of the plaintext).
 * Implementations: WebCrypto (here, browser and Node) and node:crypto (src/node, faster on Node).
 */
export interface ChunkCipher {
  seal(nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array[]> | Uint8Array[];
  open(nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array[] | null> | Uint8Array[] | null;
}

/** Makes a ChunkCipher for a 32-byte AES-256 key. */
export type ChunkCipherFactory = (key: Uint8Array) => Promise<ChunkCipher>;
