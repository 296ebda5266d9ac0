import { HEADER_BYTES, TAG_BYTES } from './header.js';
import { MAX_CHUNKS } from './subkeys.js';

/** How a backup of `size` bytes with chunk size C is cut into chunks (docs/formats/backup.md). */
export interface BackupLayout {
  /** Sealed chunks, the final one included (at least 1). */
  chunks: number;
  /** Plaintext bytes: size − 64 − 16 × chunks. */
  payloadBytes: number;
}

/**
 * The layout a valid backup of `size` bytes must have: every sealed chunk but the last is C + 16
 * bytes, the last 16 … C + 16 (16 only when it is chunk 0). Null when no valid backup has that size
 * (cut short or extended: only authenticating the chunks says which). Reads no data.
 */
export function backupLayout(size: number, chunkSize: number): BackupLayout | null {
  const rest = size - HEADER_BYTES;
  if (!Number.isSafeInteger(size) || rest < TAG_BYTES) return null;
  const piece = chunkSize + TAG_BYTES;
  const chunks = Math.ceil(rest / piece);
  const last = rest - (chunks - 1) * piece;
  if (last < TAG_BYTES || (last === TAG_BYTES && chunks > 1) || chunks > MAX_CHUNKS) return null;
  return { chunks, payloadBytes: rest - TAG_BYTES * chunks };
}
