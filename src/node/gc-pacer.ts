import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Keeps peak memory flat while streaming gigabytes. node:crypto has no in-place API, so every chunk
 * yields a fresh off-heap buffer; V8 collects those only after tens of MB of them pile up, which
 * alone would lift peak RSS by ~25 MB. A young-generation collection every few MB frees them early
 * for a negligible cost (measured: peak RSS 100 MB → 78 MB on a 1 GiB backup, same throughput).
 * If the runtime refuses to expose `gc`, pacing is simply off.
 */
type GcFn = (options?: { type?: 'minor' | 'major' }) => void;
let cached: GcFn | null | undefined;

function collector(): GcFn | null {
  if (cached === undefined) {
    try {
      const existing = (globalThis as { gc?: GcFn }).gc;
      if (existing) cached = existing;
      else {
        setFlagsFromString('--expose-gc');
        cached = runInNewContext('gc') as GcFn;
      }
    } catch {
      cached = null;
    }
  }
  return cached;
}

/**
 * Bytes processed between two young-generation collections on the streaming path. Every 8 MiB
 * let a 1 GiB directory backup (node-tar's read buffers on top of the chunk buffers) reach
 * ~93 MB of RSS in the library and ~99 MB in the CLI; every 4 MiB, ~81 MB, files ~77 MB, at
 * the same speed. (Every 2 MiB: directories 75 MB, but file backups 140 MB: glibc then kept
 * more freed memory than it reused.)
 */
export const GC_EVERY_BYTES = 4 * 1024 * 1024;

/**
 * Bytes of one block allocated and freed by `keepFreedMemory`. glibc returns the free memory at
 * the top of a heap to the kernel as soon as it exceeds its trim threshold (128 KiB by default),
 * so the 64 KiB cipher outputs, freed by each collection, were faulted in and zeroed by the
 * kernel again and again (about 15 % of the CPU time of a 1 GiB backup). Freeing one block that
 * was served by mmap makes glibc raise its mmap threshold to the block's size and its trim
 * threshold to twice that (its dynamic-threshold rule), so up to 8 MiB of freed memory per heap
 * is kept for reuse: room for the outputs freed by one collection every 2 MiB in each thread.
 */
export const KEEP_FREED_BYTES = 4 * 1024 * 1024;
let kept = false;

/**
 * Once per process, before a large backup: lets the C allocator keep recently freed memory (see
 * KEEP_FREED_BYTES). No effect, and no harm, on allocators without that rule or without `gc`.
 */
export function keepFreedMemory(): void {
  if (kept) return;
  kept = true;
  const gc = collector();
  if (!gc) return;
  Buffer.allocUnsafeSlow(KEEP_FREED_BYTES); // unreachable at once; the collection frees it
  gc({ type: 'minor' });
}

/** Returns a function to call with each processed byte count; it collects every GC_EVERY_BYTES. */
export function gcPacer(everyBytes = GC_EVERY_BYTES): (bytes: number) => void {
  const gc = collector();
  if (!gc) return () => {};
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since >= everyBytes) {
      since = 0;
      gc({ type: 'minor' });
    }
  };
}
