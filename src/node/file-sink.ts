import type { FileHandle } from 'node:fs/promises';

/** Bytes gathered before one writev; one batch is written while the next is being produced. */
export const WRITE_BATCH_BYTES = 1024 * 1024;

async function writeAll(fh: FileHandle, parts: Uint8Array[]): Promise<void> {
  let rest = parts;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest);
    let n = bytesWritten;
    const next: Uint8Array[] = [];
    for (const p of rest) {
      if (n >= p.length) n -= p.length;
      else {
        next.push(n > 0 ? p.subarray(n) : p);
        n = 0;
      }
    }
    rest = next;
  }
}

/**
 * Drains `source` into an open file: parts are batched into ~1 MiB writev calls, and each batch is
 * written (on the I/O thread pool) while the producer computes the next one.
 */
export async function drainToFile(fh: FileHandle, source: AsyncIterable<Uint8Array>): Promise<void> {
  let inflight: Promise<void> = Promise.resolve();
  let batch: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const part of source) {
      batch.push(part);
      size += part.length;
      if (size >= WRITE_BATCH_BYTES) {
        await inflight;
        inflight = writeAll(fh, batch);
        batch = [];
        size = 0;
      }
    }
    await inflight;
    if (batch.length > 0) await writeAll(fh, batch);
  } finally {
    await inflight.catch(() => {});
  }
}
