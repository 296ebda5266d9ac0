import { open, stat, type FileHandle } from 'node:fs/promises';
import { BkvError } from '../shared/errors.js';
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

async function readPieceAt(fh: FileHandle, size: number, position: number, into?: Buffer): Promise<Uint8Array> {
  const buf = into && into.length === size ? into : Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await fh.read(buf, filled, size - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}

/** Reads issued ahead of the consumer, each on the I/O thread pool. */
export const READS_AHEAD = 3;
/**
 * Buffers a reusing stream cycles through: the reads ahead, plus the piece the consumer works on,
 * one piece of lookahead and one spare. A piece stays valid until this many more were read.
 */
export const RING_BUFFERS = READS_AHEAD + 3;

/**
 * Streams a file as a first piece of `firstSize` bytes, then pieces of `restSize(first)` bytes,
 * with READS_AHEAD positional reads in flight while the consumer works. When the pieces match what
 * the consumer asks for (a header, then whole chunks), nothing is copied. Read errors become
 * BkvError('IO'). With `reuse`, the equal-size pieces cycle through RING_BUFFERS buffers instead of
 * fresh ones (far less allocation and GC work): only for consumers that drop a piece within that
 * window, as the backup encryptor and decryptor do.
 */
export async function* readFileInPieces(
  path: string,
  firstSize: number,
  restSize: (first: Uint8Array) => number,
  reuse = false,
): AsyncGenerator<Uint8Array> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw ioError(err, 'read', path);
  }
  const queue: Promise<Uint8Array>[] = [];
  const ring: Buffer[] = [];
  let slot = 0;
  try {
    const first = await readPieceAt(fh, firstSize, 0);
    if (first.length === 0) return;
    if (first.length < firstSize) {
      yield first;
      return;
    }
    const size = restSize(first);
    let position = first.length;
    const issue = () => {
      let buf: Buffer | undefined;
      if (reuse && size >= 4096) {
        slot = (slot + 1) % RING_BUFFERS;
        buf = ring[slot] ??= Buffer.allocUnsafe(size);
      }
      const p = readPieceAt(fh, size, position, buf);
      p.catch(() => {}); // observed when dequeued
      queue.push(p);
      position += size;
    };
    for (let i = 0; i < READS_AHEAD; i++) issue();
    yield first;
    while (queue.length > 0) {
      const piece = await queue.shift()!;
      if (piece.length === 0) return;
      if (piece.length < size) {
        yield piece;
        return;
      }
      issue();
      yield piece;
    }
  } catch (err) {
    throw ioError(err, 'read', path);
  } finally {
    await Promise.allSettled(queue);
    await fh.close();
  }
}

/** Streams a plain file in chunk-size pieces (so the encryptor never copies). */
export function readFileChunks(path: string, pieceSize = IO_BUFFER_BYTES, reuse = false): AsyncGenerator<Uint8Array> {
  return readFileInPieces(path, pieceSize, () => pieceSize, reuse);
}

/** Streams a backup file as its header, then whole sealed chunks (size read from the header). */
export function readBackupPieces(path: string, reuse = false): AsyncGenerator<Uint8Array> {
  const restSize = (header: Uint8Array) => {
    const chunkSize = new DataView(header.buffer, header.byteOffset, HEADER_BYTES).getUint32(12, false);
    return isValidChunkSize(chunkSize) ? chunkSize + TAG_BYTES : IO_BUFFER_BYTES; // invalid: the decoder reports it
  };
  return readFileInPieces(path, HEADER_BYTES, restSize, reuse);
}
