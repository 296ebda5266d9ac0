import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { BkvError } from '../client/errors.js';
import { ioError } from './io-errors.js';

/** Read buffer size for file streams: large reads keep syscalls and copies few. */
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

/** Streams a file as byte arrays, reporting read errors as BkvError('IO'). */
export async function* readFileChunks(path: string, bufferSize = IO_BUFFER_BYTES): AsyncGenerator<Uint8Array> {
  const stream = createReadStream(path, { highWaterMark: bufferSize });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (err) {
    throw ioError(err, 'read', path);
  } finally {
    stream.destroy();
  }
}
