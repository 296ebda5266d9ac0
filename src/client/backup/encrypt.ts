import { assertBackupKey, keyFingerprint } from '../keys/backup-key.js';
import type { ChunkCipherFactory } from './cipher.js';
import { ByteReader } from './byte-reader.js';
import { DEFAULT_CHUNK_SIZE, FORMAT_VERSION, SALT_BYTES, encodeHeader, type PayloadKind } from './header.js';
import { chunkNonce, derivePayloadKeys } from './subkeys.js';
import { webCryptoAesGcm } from './webcrypto-cipher.js';

export interface EncryptOptions {
  /** The backup key K (32 bytes). */
  key: Uint8Array;
  /** What the payload is; recorded in the header. Default 'file'. */
  kind?: PayloadKind;
  /** Plaintext bytes per chunk: a power of two, 4 KiB to 16 MiB. Default 1 MiB. */
  chunkSize?: number;
  /** AES-256-GCM implementation. Default WebCrypto. */
  cipher?: ChunkCipherFactory;
  /** Per-backup salt (32 bytes). Default: fresh random bytes; set only for test vectors. */
  salt?: Uint8Array;
}

/** A new backup's header and the per-backup keys that seal its chunks. */
export interface NewBackup {
  header: Uint8Array;
  chunkSize: number;
  payloadKey: Uint8Array;
  noncePrefix: Uint8Array;
}

/** Draws the salt (unless given) and makes the header and per-backup keys for a new backup. */
export function newBackup(options: Omit<EncryptOptions, 'cipher'>): NewBackup {
  assertBackupKey(options.key);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const salt = options.salt ?? crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const header = encodeHeader({
    version: FORMAT_VERSION,
    kind: options.kind ?? 'file',
    chunkSize,
    fingerprint: keyFingerprint(options.key),
    salt,
  });
  return { header, chunkSize, ...derivePayloadKeys(options.key, salt) };
}

/**
 * Encrypts a byte stream into backup format v1: yields the 64-byte header, then one sealed chunk
 * (ciphertext || tag) per `chunkSize` plaintext bytes, the last one flagged as final.
 * An empty input gives one empty final chunk. Memory use is a few chunks whatever the input size.
 */
export async function* encryptBackup(
  source: AsyncIterable<Uint8Array>,
  options: EncryptOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const { header, chunkSize, payloadKey, noncePrefix } = newBackup(options);
  const cipher = await (options.cipher ?? webCryptoAesGcm)(payloadKey);
  const reader = new ByteReader(source);
  try {
    yield header;
    let counter = 0;
    let current = await reader.read(chunkSize);
    for (;;) {
      // A chunk is final when the input ends with it; a full chunk needs one byte of lookahead.
      const last = current.length < chunkSize || (await reader.atEnd());
      for (const part of await cipher.seal(chunkNonce(noncePrefix, counter, last), current, header)) yield part;
      if (last) return;
      counter++;
      current = await reader.read(chunkSize);
    }
  } finally {
    await reader.close();
  }
}
