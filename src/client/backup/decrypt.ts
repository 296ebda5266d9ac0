import { BkvError } from '../../shared/errors.js';
import { assertBackupKey, formatKeyId, keyFingerprint } from '../keys/backup-key.js';
import type { ChunkCipher, ChunkCipherFactory } from './cipher.js';
import { ByteReader } from './byte-reader.js';
import { HEADER_BYTES, TAG_BYTES, decodeHeader, type BackupHeader } from './header.js';
import { chunkNonce, derivePayloadKeys } from './subkeys.js';
import { webCryptoAesGcm } from './webcrypto-cipher.js';
import { diagnoseChunkFailure } from './diagnose.js';
import { equalBytes } from '../../shared/bytes.js';

export interface DecryptOptions {
  /** The backup key K (32 bytes). */
  key: Uint8Array;
  /** AES-256-GCM implementation. Default WebCrypto. */
  cipher?: ChunkCipherFactory;
}

export interface OpenedBackup {
  header: BackupHeader;
  /** Authenticated plaintext, chunk by chunk; throws a BkvError at the first bad chunk. */
  plaintext: AsyncGenerator<Uint8Array, void, undefined>;
}

/**
 * Checks the key against a decoded header and the first sealed piece (`first`, possibly short or
 * empty): WRONG_KEY, or TAMPERED when chunk 0 opens under a header carrying our fingerprint (the
 * fingerprint field itself was altered). Shared by the streaming reader and the parallel file path.
 */
export async function checkBackupKey(
  key: Uint8Array,
  headerBytes: Uint8Array,
  cipher: ChunkCipher,
  noncePrefix: Uint8Array,
  first: Uint8Array,
): Promise<void> {
  const ourFingerprint = keyFingerprint(key);
  if (equalBytes(ourFingerprint, headerBytes.subarray(16, 32))) return;
  // A copy (a Buffer's slice() would be a view, and set() would then alter the header itself).
  const fixed = new Uint8Array(headerBytes);
  fixed.set(ourFingerprint, 16);
  for (const last of [true, false]) {
    if (first.length >= TAG_BYTES && (await cipher.open(chunkNonce(noncePrefix, 0, last), first, fixed))) {
      throw new BkvError('TAMPERED', 'backup header was altered: key fingerprint does not match the data');
    }
  }
  const wanted = formatKeyId(headerBytes.subarray(16, 32));
  const given = formatKeyId(ourFingerprint);
  throw new BkvError('WRONG_KEY', `wrong key: this backup was made with key id ${wanted}, and the key given has key id ${given}`, { keyId: wanted, givenKeyId: given });
}

/**
 * The verdict on sealed piece `index` (C + 16 bytes, or fewer at the end of the input), `more`
 * saying whether bytes follow it: its plaintext, or the BkvError the streaming reader reports for
 * it (TRUNCATED, TRAILING_DATA, TAMPERED; see docs/formats/backup.md). A parallel reader that
 * found piece i failing calls this for the lowest such i, so both name a failure the same way.
 */
export async function openPiece(
  cipher: ChunkCipher,
  prefix: Uint8Array,
  aad: Uint8Array,
  index: number,
  piece: Uint8Array,
  more: boolean,
): Promise<Uint8Array[]> {
  if (piece.length === 0) {
    throw new BkvError('TRUNCATED', `backup is truncated: it ends before chunk ${index}`, { chunk: index });
  }
  if (piece.length < TAG_BYTES) {
    throw new BkvError('TRUNCATED', `backup is truncated inside chunk ${index}`, { chunk: index });
  }
  const plain = await cipher.open(chunkNonce(prefix, index, !more), piece, aad);
  if (!plain) {
    throw await diagnoseChunkFailure({ cipher, prefix, aad, index, piece, more });
  }
  if (!more && index > 0 && plain.every((p) => p.length === 0)) {
    throw new BkvError('TAMPERED', `chunk ${index} is an empty final chunk after data`, { chunk: index });
  }
  return plain;
}

/**
 * Reads and checks the header of a backup, then returns it with a generator of authenticated
 * plaintext. Only chunks that verified are ever yielded; the generator completes only after the
 * final chunk verified and nothing follows it. Errors: NOT_A_BACKUP, UNSUPPORTED_VERSION,
 * WRONG_KEY, TRUNCATED, TRAILING_DATA, TAMPERED (see docs/formats/backup.md).
 */
export async function openBackup(source: AsyncIterable<Uint8Array>, options: DecryptOptions): Promise<OpenedBackup> {
  assertBackupKey(options.key);
  const reader = new ByteReader(source);
  try {
    const headerBytes = new Uint8Array(await reader.read(HEADER_BYTES)); // a copy, even of a Buffer
    const header = decodeHeader(headerBytes);
    const { payloadKey, noncePrefix } = derivePayloadKeys(options.key, header.salt);
    const cipher = await (options.cipher ?? webCryptoAesGcm)(payloadKey);
    const pieceSize = header.chunkSize + TAG_BYTES;
    const first = await reader.read(pieceSize);
    await checkBackupKey(options.key, headerBytes, cipher, noncePrefix, first);
    return { header, plaintext: chunks(reader, cipher, noncePrefix, headerBytes, pieceSize, first) };
  } catch (err) {
    await reader.close();
    throw err;
  }
}

async function* chunks(
  reader: ByteReader,
  cipher: ChunkCipher,
  prefix: Uint8Array,
  aad: Uint8Array,
  pieceSize: number,
  first: Uint8Array,
): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    let piece = first;
    for (let index = 0; ; index++) {
      const more = piece.length > 0 && !(await reader.atEnd());
      const plain = await openPiece(cipher, prefix, aad, index, piece, more);
      if (!more) {
        for (const p of plain) if (p.length > 0) yield p;
        return;
      }
      for (const p of plain) yield p;
      // The previous piece is done with (opened, and diagnosed if it failed): reuse its memory.
      piece = await reader.read(pieceSize, true);
    }
  } finally {
    await reader.close();
  }
}
