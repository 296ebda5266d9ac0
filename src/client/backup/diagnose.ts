import { BkvError } from '../../shared/errors.js';
import type { ChunkCipher } from './cipher.js';
import { TAG_BYTES } from './header.js';
import { chunkNonce } from './subkeys.js';

/** How far (in bytes) the final-chunk search looks for bytes appended after the real end. */
export const APPENDED_SEARCH_BYTES = 256;
/** How many chunk positions either side are tried to recognise a moved or copied chunk. */
export const MOVED_SEARCH_CHUNKS = 16;

export interface FailedChunk {
  cipher: ChunkCipher;
  prefix: Uint8Array;
  aad: Uint8Array;
  index: number;
  piece: Uint8Array;
  /** Whether more bytes follow this piece. */
  more: boolean;
}

/**
 * Runs only after chunk `index` failed to authenticate, to name the failure precisely.
 * The verdict never changes what is accepted: every path here ends in an error.
 */
export async function diagnoseChunkFailure(f: FailedChunk): Promise<BkvError> {
  const { cipher, prefix, aad, index, piece, more } = f;
  const opens = async (counter: number, last: boolean, bytes: Uint8Array = piece) =>
    (await cipher.open(chunkNonce(prefix, counter, last), bytes, aad)) !== null;
  const details = { chunk: index };
  if (more && (await opens(index, true))) {
    return new BkvError('TRAILING_DATA', `unexpected data after the final chunk (chunk ${index})`, details);
  }
  if (!more && (await opens(index, false))) {
    return new BkvError('TRUNCATED', `backup is truncated: it ends after chunk ${index}, which is not the final chunk`, details);
  }
  // Bytes appended after a short final chunk land inside this piece: look for the real end.
  const maxCut = Math.min(APPENDED_SEARCH_BYTES, piece.length - TAG_BYTES);
  for (let cut = 1; cut <= maxCut; cut++) {
    if (await opens(index, true, piece.subarray(0, piece.length - cut))) {
      return new BkvError('TRAILING_DATA', `unexpected data after the final chunk (chunk ${index})`, details);
    }
  }
  const lo = Math.max(0, index - MOVED_SEARCH_CHUNKS);
  for (let j = lo; j <= index + MOVED_SEARCH_CHUNKS; j++) {
    if (j === index) continue;
    for (const last of [false, true]) {
      if (await opens(j, last)) {
        return new BkvError(
          'TAMPERED',
          `backup was tampered with: chunk ${index} is chunk ${j} of this backup (reordered or duplicated)`,
          { ...details, actual: j },
        );
      }
    }
  }
  const where = index === 0 ? 'chunk 0 or the header' : `chunk ${index}`;
  const why = more ? 'altered, or from another backup' : 'altered, or the backup was cut short inside it';
  return new BkvError('TAMPERED', `backup was tampered with: ${where} failed authentication (${why})`, details);
}
