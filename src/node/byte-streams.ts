import { BkvError } from '../shared/errors.js';

/**
 * Byte streams that are not files (standard input and output, pipes, sockets), for backups
 * streamed like `age` and `restic` stream them. `name` ("standard input") names them in errors.
 */

/** The bytes of a readable stream, its read errors as BkvError('IO'). */
export async function* readableBytes(stream: NodeJS.ReadableStream, name: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream) {
      yield typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
    }
  } catch (err) {
    throw streamError(err, 'read', name);
  }
}

/**
 * Writes every part of `source` to `stream`, each handed to the stream (and so to the kernel, for
 * a pipe) before the next is pulled: nothing is buffered ahead of the source, so a part is out
 * only once the source yielded it. Resolves with the byte count; a reader that went away (EPIPE)
 * or any other write error rejects with BkvError('IO'). Does not end the stream.
 */
export async function writeToStream(stream: NodeJS.WritableStream, source: AsyncIterable<Uint8Array>, name: string): Promise<number> {
  let failure: unknown = null;
  const onError = (err: unknown) => {
    failure ??= err;
  };
  stream.on('error', onError);
  let written = 0;
  try {
    for await (const part of source) {
      if (failure) break;
      if (part.length === 0) continue;
      await new Promise<void>((resolve) => {
        stream.write(part, (err) => {
          if (err) onError(err);
          resolve();
        });
      });
      if (failure) break;
      written += part.length;
    }
  } finally {
    stream.off('error', onError);
  }
  if (failure) throw streamError(failure, 'write', name);
  return written;
}

function streamError(err: unknown, action: string, name: string): BkvError {
  if (err instanceof BkvError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const reason = code === 'EPIPE' ? 'the reading end was closed' : String((err as Error)?.message ?? err);
  return new BkvError('IO', `cannot ${action} ${name}: ${reason}`, { path: name, errno: code });
}

/**
 * The first `n` bytes of `source` (fewer if it ends first), and a stream of all of its bytes,
 * those first: for reading a backup's header from a pipe before deciding how to open it.
 */
export async function peekBytes(source: AsyncIterable<Uint8Array>, n: number): Promise<{ head: Uint8Array; all: AsyncIterable<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const parts: Uint8Array[] = [];
  let have = 0;
  while (have < n) {
    const r = await it.next();
    if (r.done) break;
    parts.push(r.value);
    have += r.value.length;
  }
  const first = new Uint8Array(have);
  let at = 0;
  for (const p of parts) {
    first.set(p, at);
    at += p.length;
  }
  async function* all(): AsyncGenerator<Uint8Array> {
    if (first.length > 0) yield first;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head: first.subarray(0, n), all: all() };
}
