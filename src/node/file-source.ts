import { open, stat, type FileHandle } from 'node:fs/promises';
import { BkvError } from '../client/errors.js';
import { HEADER_BYTES, TAG_BYTES, isValidChunkSize } from '../client/backup/header.js';
import { ioError } from './io-errors.js';

/** Default read size for file streams: large reads keep syscalls few. */
export const IO_BUFFER_BYTES = 1024 * 1024;

/** Checks that `path` is a readable regular file and returns its size. */
export async function regularFileSize(path: string): Promise<number> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw ioError(err, 'read', path);
  }
  if (st.isDirectory()) throw new BkvError('IO', `cannot read ${path}: is a directory, expected a file`, { path });
  if (!st.isFile()) throw new BkvError('IO', `cannot read ${path}: not a regular file`, { path });
  return st.size;
}

async function readPiece(fh: FileHandle, size: number, into?: Buffer): Promise<Uint8Array> {
  const buf = into && into.length === size ? into : Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await fh.read(buf, filled, size - filled, null);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}

/**
 * How many read buffers a reusing stream cycles through. A piece stays valid until this many more
 * pieces were read: enough for a consumer that holds the current piece, one piece of lookahead
 * and the read in flight (the backup encryptor and decryptor), with one to spare.
 */
export const RING_BUFFERS = 4;

/**
 * Streams a file in pieces whose sizes `sizeOf(index, previous)` chooses, reading the next piece
 * on the I/O thread pool while the consumer works on the current one. When the pieces match what
 * the consumer asks for (whole chunks), nothing is copied. Read errors become BkvError('IO').
 * With `reuse`, pieces of equal size cycle through RING_BUFFERS buffers instead of fresh ones
 * (far less allocation and GC work); only for consumers that drop a piece within that window.
 */
export async function* readFileInPieces(
  path: string,
  sizeOf: (index: number, previous: Uint8Array | null) => number,
  reuse = false,
): AsyncGenerator<Uint8Array> {
  const ring: Buffer[] = [];
  let slot = 0;
  let ringSize = 0;
  const bufferFor = (size: number): Buffer | undefined => {
    if (!reuse || size < 4096) return undefined; // small pieces (headers) are not worth it
    if (ringSize === 0) ringSize = size;
    if (size !== ringSize) return undefined;
    slot = (slot + 1) % RING_BUFFERS;
    ring[slot] ??= Buffer.allocUnsafe(size);
    return ring[slot];
  };
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw ioError(err, 'read', path);
  }
  let pending: Promise<Uint8Array> | null = null;
  try {
    let size = sizeOf(0, null);
    pending = readPiece(fh, size, bufferFor(size));
    for (let i = 1; ; i++) {
      const piece: Uint8Array = await pending;
      pending = null;
      if (piece.length === 0) return;
      if (piece.length === size) {
        size = sizeOf(i, piece);
        pending = readPiece(fh, size, bufferFor(size));
      }
      yield piece;
      if (!pending) return;
    }
  } catch (err) {
    throw ioError(err, 'read', path);
  } finally {
    await pending?.catch(() => {});
    await fh.close();
  }
}

/** Streams a plain file in chunk-size pieces (so the encryptor never copies). */
export function readFileChunks(path: string, pieceSize = IO_BUFFER_BYTES, reuse = false): AsyncGenerator<Uint8Array> {
  return readFileInPieces(path, () => pieceSize, reuse);
}

/** Streams a backup file as its header, then whole sealed chunks (size read from the header). */
export function readBackupPieces(path: string, reuse = false): AsyncGenerator<Uint8Array> {
  let pieceSize = IO_BUFFER_BYTES;
  return readFileInPieces(path, (index, previous) => {
    if (index === 0) return HEADER_BYTES;
    if (index === 1 && previous) {
      const chunkSize = new DataView(previous.buffer, previous.byteOffset, HEADER_BYTES).getUint32(12, false);
      if (isValidChunkSize(chunkSize)) pieceSize = chunkSize + TAG_BYTES;
    }
    return pieceSize;
  }, reuse);
}
