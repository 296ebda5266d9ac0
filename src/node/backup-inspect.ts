import { open } from 'node:fs/promises';
import { HEADER_BYTES, decodeHeader, type BackupHeader } from '../client/backup/header.js';
import { backupLayout, type BackupLayout } from '../client/backup/layout.js';
import { openBackup } from '../client/backup/decrypt.js';
import { fastAesGcm } from './aes-gcm.js';
import { readBackupPieces, regularFileSize } from './file-source.js';
import { ioError } from './io-errors.js';

export interface BackupFileInfo {
  header: BackupHeader;
  /** The file's size in bytes. */
  size: number;
  /** The chunk layout that size implies, or null when no valid backup has that size. */
  layout: BackupLayout | null;
}

/**
 * Reads and checks a backup file's header (magic, version, fields) and its size, without a key and
 * without reading any chunk. Errors as the reader's: NOT_A_BACKUP, TRUNCATED, UNSUPPORTED_VERSION,
 * TAMPERED (a header field no writer produces), IO.
 */
export async function inspectBackupFile(path: string): Promise<BackupFileInfo> {
  const size = await regularFileSize(path);
  let bytes: Uint8Array;
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(HEADER_BYTES);
      let filled = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, filled, HEADER_BYTES - filled, filled);
        filled += bytesRead;
        if (bytesRead === 0 || filled === HEADER_BYTES) break;
      }
      bytes = buf.subarray(0, filled);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw ioError(err, 'read', path);
  }
  const header = decodeHeader(bytes);
  return { header, size, layout: backupLayout(size, header.chunkSize) };
}

export interface VerifyBackupFileOptions {
  input: string;
  key: Uint8Array;
  onProgress?: (bytes: number) => void;
}

/**
 * Authenticates every chunk of a backup file with `key`, as a restore would, and discards the
 * plaintext: nothing is written anywhere. Resolves only when the final chunk verified and nothing
 * follows it; otherwise throws the restore's error (WRONG_KEY, TAMPERED, TRUNCATED, …).
 */
export async function verifyBackupFile(o: VerifyBackupFileOptions): Promise<{ header: BackupHeader; size: number; chunks: number; payloadBytes: number }> {
  await regularFileSize(o.input); // a directory or a missing file: IO, before anything else
  let size = 0;
  async function* counted() {
    for await (const piece of readBackupPieces(o.input, true)) {
      size += piece.length;
      o.onProgress?.(piece.length);
      yield piece;
    }
  }
  const { header, plaintext } = await openBackup(counted(), { key: o.key, cipher: fastAesGcm });
  let payloadBytes = 0;
  for await (const part of plaintext) payloadBytes += part.length;
  // The bytes that verified have a valid layout by construction; the count comes from there.
  const layout = backupLayout(size, header.chunkSize);
  return { header, size, chunks: layout?.chunks ?? 0, payloadBytes };
}
