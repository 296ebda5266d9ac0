import { constants } from 'node:os';
import { createRequire } from 'node:module';

/**
 * Reserves the blocks of an output file whose final size is known (Linux fallocate(2), through
 * the addon native/fallocate.c; Node's fs has no call for it). A full disk or a file-size limit
 * then fails before any work, and the writes that follow skip the file system's per-page
 * delayed-allocation bookkeeping (measured in BENCHMARKS.md). Where the addon was not built or
 * the file system cannot reserve blocks, or with BKV_NATIVE=0, nothing is done and the writes
 * allocate as usual.
 */
interface Addon {
  preallocate(fd: number, length: number): number;
}

const ADDON = '../../native/build/Release/bkv_fallocate.node';
let addon: Addon | null | undefined;

function load(): Addon | null {
  if (process.env.BKV_NATIVE === '0') return null;
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)(ADDON) as Addon;
    } catch {
      addon = null;
    }
  }
  return addon;
}

/** Errors that mean the file cannot be this large: reported. Anything else: the writes decide. */
const FATAL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

const errnoName = (n: number): string | undefined =>
  Object.entries(constants.errno).find(([, v]) => v === n)?.[0];

/**
 * Reserves `length` bytes from the start of the open file `fd`. Resolves quietly when
 * preallocation is unavailable; throws an errno-style error (code ENOSPC, EDQUOT or EFBIG) when
 * the file cannot grow to `length`. Returns whether blocks were reserved.
 */
export function preallocate(fd: number, length: number): boolean {
  const a = load();
  if (!a || length <= 0) return false;
  const errno = a.preallocate(fd, length);
  if (errno === 0) return true;
  const code = errnoName(errno);
  if (code && FATAL.has(code)) throw Object.assign(new Error(`fallocate: ${code}`), { code, errno: -errno });
  return false;
}

/** Whether the addon is built and loads (for tests and diagnostics). */
export function preallocationAvailable(): boolean {
  return load() !== null;
}
