import type { FileHandle } from 'node:fs/promises';

/** Bytes gathered before one positional writev. */
export const WRITE_BATCH_BYTES = 1024 * 1024;
/** Batches being written at once (on the I/O thread pool) while the producer makes the next. */
export const WRITES_IN_FLIGHT = 3;

/** What is left of `parts` after a (possibly partial) vectored write took their first `n` bytes. */
export function unwritten(parts: Uint8Array[], n: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (const p of parts) {
    if (n >= p.length) n -= p.length;
    else {
      rest.push(n > 0 ? p.subarray(n) : p);
      n = 0;
    }
  }
  return rest;
}

async function writeAllAt(fh: FileHandle, parts: Uint8Array[], position: number): Promise<void> {
  let rest = parts;
  let pos = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos);
    pos += bytesWritten;
    rest = unwritten(rest, bytesWritten);
  }
}

/**
 * Drains `source` into an open, empty file: parts are batched into ~1 MiB positional writes, and up
 * to WRITES_IN_FLIGHT batches are written concurrently (to disjoint offsets) while the producer
 * computes the next. Resolves once every byte is written; rejects on the first error.
 */
export async function drainToFile(fh: FileHandle, source: AsyncIterable<Uint8Array>): Promise<number> {
  const inflight: Promise<void>[] = [];
  let batch: Uint8Array[] = [];
  let size = 0;
  let position = 0;
  const flush = async () => {
    if (inflight.length >= WRITES_IN_FLIGHT) await inflight.shift();
    const p = writeAllAt(fh, batch, position);
    p.catch(() => {}); // observed below; avoid an unhandled rejection while queued
    inflight.push(p);
    position += size;
    batch = [];
    size = 0;
  };
  try {
    for await (const part of source) {
      batch.push(part);
      size += part.length;
      if (size >= WRITE_BATCH_BYTES) await flush();
    }
    if (size > 0) await flush();
    while (inflight.length > 0) await inflight.shift();
  } finally {
    await Promise.allSettled(inflight);
  }
  return position;
}
