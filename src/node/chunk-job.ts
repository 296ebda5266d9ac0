import { createCipheriv, createDecipheriv, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { readSync, writevSync } from 'node:fs';
import { unwritten } from './file-sink.js';
import { gcPacer, keepFreedMemory } from './gc-pacer.js';
import { inPlaceGcm, type InPlaceGcm } from './native-aes-gcm.js';

/**
 * The per-chunk work of the parallel file path (src/node/parallel-backup.ts), run by each thread
 * of its pool: claim the next chunk index, positional reads, AES-256-GCM through node:crypto,
 * positional writes. Every offset follows from the format (docs/formats/backup.md): a 64-byte
 * header, then chunk i at 64 + i × (C + 16) in the backup and at i × C in the payload.
 * AES-256-GCM runs in place through the addon of src/node/native-aes-gcm.ts when it is available
 * (bytes are read into a small ring of buffers, encrypted or decrypted there, and written from
 * there), else through node:crypto, which returns a fresh buffer per call.
 * Synchronous on purpose: each thread keeps one core busy with no event-loop hand-offs.
 */

export type ChunkMode = 'seal' | 'open';

const HEADER = 64;
const TAG = 16;
/** Cipher input per `update` call: outputs stay below the C allocator's mmap threshold (see aes-gcm.ts). */
const PIECE = 64 * 1024;
/**
 * Bytes read (and, when sealing, written) per system call. A whole 1 MiB chunk in and 1 MiB out
 * overflow a core's L2 cache; 256 KiB slices keep what was just read in cache while it is
 * encrypted and written (measured: half the CPU time of whole-chunk reads on this path).
 */
const SLICE = 256 * 1024;
/** Page size sealing aligns its writes to: a write that starts or ends inside a page
 * the file system has not filled yet costs more than one that covers whole pages. */
const PAGE = 4096;
/**
 * Output a thread may hold back while another thread is writing. Writes to one file are
 * serialised by the kernel (the inode lock), and a thread that waits for that lock spins on its
 * core; so threads take turns through a lock of their own, and a thread that finds it taken
 * goes on reading and encrypting, and writes what it holds at its next turn.
 */
const DEFER_BYTES = 1024 * 1024;
/** Slice buffers per thread: what may wait for a turn to write, and one more. */
const RING = Math.ceil(DEFER_BYTES / SLICE) + 2;

/** Slots of the shared control array (BigInt64Array over CONTROL_BYTES). */
export const NEXT = 0; // next chunk index to claim
export const STOP = 1; // lowest failed chunk index (chunks at or past it are not started)
export const DONE = 2; // bytes of input processed, for progress
export const FINISHED = 3; // chunks processed and written
export const WRITING = 4; // 1 while a thread writes to the output
export const ACTIVE = 5; // threads inside runChunkJob (a thread that enters once all chunks are claimed does no I/O)
export const CONTROL_BYTES = 6 * 8;

export interface ChunkJob {
  mode: ChunkMode;
  /** Open file descriptors (shared by every thread of the process); positional I/O only. */
  inFd: number;
  outFd: number;
  /** Payload key and nonce prefix (docs/formats/backup.md, "Keys and nonces"). */
  key: Uint8Array;
  prefix: Uint8Array;
  /** The 64-byte header: associated data of every chunk. */
  aad: Uint8Array;
  chunkSize: number;
  /** Size of the input when the job started: it fixes every chunk's offsets and the final flag. */
  inputSize: number;
  chunks: number;
  control: SharedArrayBuffer;
  /** Payload bytes between two young-generation collections (frees node:crypto outputs early). */
  gcEveryBytes: number;
  /** 'auto': in place when the addon is available; 'node': node:crypto (same bytes, slower). */
  aes: 'auto' | 'node';
}

/**
 * Why a chunk stopped the job. `reject`: the sealed piece does not open as the format requires
 * (the caller names the failure with the streaming reader's rules); `changed`: the input is not
 * the size it had when the job started; `io`: a read or write failed.
 */
export type ChunkFailure =
  | { index: number; kind: 'reject' }
  | { index: number; kind: 'changed' }
  | { index: number; kind: 'io'; op: 'read' | 'write'; code?: string; message: string };

/** A failed read or write of chunk `index`, on its way to becoming a ChunkFailure. */
class IoFailure extends Error {
  constructor(
    readonly index: number,
    readonly op: 'read' | 'write',
    readonly error: unknown,
  ) {
    super('io');
  }

  failure(): ChunkFailure {
    const e = this.error as NodeJS.ErrnoException;
    return { index: this.index, kind: 'io', op: this.op, message: String(e?.message ?? e), ...(e?.code ? { code: e.code } : {}) };
  }
}

/** Writes every byte of `parts` at `position`. */
function writeFully(fd: number, parts: Uint8Array[], position: number): void {
  let rest = parts;
  let pos = position;
  while (rest.length > 0) {
    const n = writevSync(fd, rest, pos);
    pos += n;
    rest = unwritten(rest, n);
  }
}

/** This thread's writes to the output: taken in turns with the other threads (see DEFER_BYTES). */
class TurnWriter {
  private pending: Array<{ index: number; parts: Uint8Array[]; position: number }> = [];
  private bytes = 0;

  constructor(
    private readonly control: BigInt64Array,
    private readonly fd: number,
  ) {}

  /** Makes sure no queued write still refers to `buf`, so that it may be filled again. */
  release(buf: Uint8Array): void {
    if (this.pending.some((w) => w.parts.some((p) => p.buffer === buf.buffer))) this.flush(true);
  }

  /** Queues `parts` (of chunk `index`) for `position`; writes what is queued if it is our turn. */
  write(index: number, parts: Uint8Array[], position: number): void {
    this.pending.push({ index, parts, position });
    for (const p of parts) this.bytes += p.length;
    this.flush(this.bytes >= DEFER_BYTES);
  }

  /** Writes everything queued: at once if no other thread is writing, else only when `wait`. */
  flush(wait: boolean): void {
    if (this.pending.length === 0) return;
    const c = this.control;
    while (Atomics.compareExchange(c, WRITING, 0n, 1n) !== 0n) {
      if (!wait) return;
      Atomics.wait(c, WRITING, 1n);
    }
    try {
      for (const w of this.pending) {
        try {
          writeFully(this.fd, w.parts, w.position);
        } catch (err) {
          throw new IoFailure(w.index, 'write', err);
        }
      }
    } finally {
      this.pending = [];
      this.bytes = 0;
      Atomics.store(c, WRITING, 0n);
      Atomics.notify(c, WRITING, 1);
    }
  }
}

function lowerStop(control: BigInt64Array, index: number): void {
  const want = BigInt(index);
  for (;;) {
    const cur = Atomics.load(control, STOP);
    if (cur <= want || Atomics.compareExchange(control, STOP, cur, want) === cur) return;
  }
}

interface ChunkContext {
  job: ChunkJob;
  /** A read buffer for pieces too short to hold a tag. */
  buf: Buffer;
  cipher: SliceCipher;
  /** The slice buffers chunks are read into (and, in place, encrypted in and written from). */
  ring: Buffer[];
  ringNext: number;
  key: Buffer;
  aad: Buffer;
  nonce: Buffer;
  out: TurnWriter;
}

/** The next ring buffer, once no queued write refers to it any more. */
function nextBuffer(ctx: ChunkContext): Buffer {
  const buf = ctx.ring[ctx.ringNext]!;
  ctx.ringNext = (ctx.ringNext + 1) % ctx.ring.length;
  ctx.out.release(buf);
  return buf;
}

/**
 * Runs chunks of `job` until none is left, one fails, or `keepGoing` says stop (checked before
 * each claim). Chunks are claimed in increasing order from a shared counter, and no chunk is
 * started at or past the lowest failure, so when every thread has returned, every chunk below
 * the lowest failed index was processed. Returns this thread's failure, if any; without one,
 * everything this thread produced is written when it returns.
 */
export function runChunkJob(job: ChunkJob, keepGoing: () => boolean = () => true): ChunkFailure | null {
  const control = new BigInt64Array(job.control);
  Atomics.add(control, ACTIVE, 1n);
  try {
    return runChunks(job, control, keepGoing);
  } finally {
    Atomics.sub(control, ACTIVE, 1n); // after every write of this thread and its FINISHED count
  }
}

function runChunks(job: ChunkJob, control: BigInt64Array, keepGoing: () => boolean): ChunkFailure | null {
  const native = job.aes === 'auto' ? inPlaceGcm() : null;
  const inPlace = native?.available === true;
  const ctx: ChunkContext = {
    job,
    buf: Buffer.allocUnsafe(TAG + 1),
    cipher: native?.available ? inPlaceSlices(native.create()) : nodeSlices(),
    ring: Array.from({ length: RING }, () => Buffer.allocUnsafeSlow(SLICE + TAG + 1)),
    ringNext: 0,
    key: Buffer.from(job.key),
    aad: Buffer.from(job.aad),
    nonce: Buffer.alloc(12),
    out: new TurnWriter(control, job.outFd),
  };
  ctx.nonce.set(job.prefix, 0);
  if (!inPlace) keepFreedMemory(); // node:crypto allocates an output per call; the in-place path nothing
  const pace = inPlace ? () => {} : gcPacer(job.gcEveryBytes);
  const pieceSize = job.mode === 'seal' ? job.chunkSize : job.chunkSize + TAG;
  const inStart = job.mode === 'seal' ? 0 : HEADER;
  let failure: ChunkFailure | null = null;
  let finished = 0n;
  try {
    while (keepGoing()) {
      const index = Number(Atomics.add(control, NEXT, 1n));
      if (index >= job.chunks || BigInt(index) >= Atomics.load(control, STOP)) break;
      const position = inStart + index * pieceSize;
      const length = index === job.chunks - 1 ? job.inputSize - position : pieceSize;
      failure = job.mode === 'seal' ? sealChunk(ctx, index, position, length) : openChunk(ctx, index, position, length);
      if (failure) break;
      finished++;
      Atomics.add(control, DONE, BigInt(length));
      pace(length);
    }
    if (!failure) ctx.out.flush(true);
  } catch (err) {
    if (!(err instanceof IoFailure)) throw err;
    failure = err.failure();
  }
  if (failure) lowerStop(control, failure.index);
  else Atomics.add(control, FINISHED, finished);
  return failure;
}

function setNonce(ctx: ChunkContext, index: number, last: boolean): Buffer {
  ctx.nonce.writeUInt32BE(index, 7);
  ctx.nonce[11] = last ? 1 : 0;
  return ctx.nonce;
}

/**
 * Reads the next slice of chunk `index`: `length` bytes, plus one more at the end of the input
 * (which must not be there). False when the input does not have exactly those bytes: it changed.
 */
function readSlice(ctx: ChunkContext, index: number, length: number, position: number, endOfInput: boolean, buf = ctx.buf): boolean {
  const want = endOfInput ? length + 1 : length;
  let got = 0;
  try {
    while (got < want) {
      const n = readSync(ctx.job.inFd, buf, got, want - got, position + got);
      if (n === 0) break;
      got += n;
    }
  } catch (err) {
    throw new IoFailure(index, 'read', err);
  }
  return got === length;
}

/**
 * AES-256-GCM over one chunk, slice by slice, as the two paths do it: in place through the addon
 * (the slice's own buffer is the output, the tag goes right after it), or through node:crypto
 * (fresh output buffers, 64 KiB per `update` call: see PIECE).
 */
interface SliceCipher {
  start(encrypt: boolean, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): void;
  /** Encrypts or decrypts `buf[0, n)`; returns the output pieces. */
  update(buf: Buffer, n: number): Uint8Array[];
  /** Ends a seal: the pieces that follow the last slice's output (the tag), using `buf[n, n + 16)` if it can. */
  finishSeal(buf: Buffer, n: number): Uint8Array[];
  /** Ends an open: whether `tag` authenticates the chunk. */
  finishOpen(tag: Uint8Array): boolean;
}

function inPlaceSlices(gcm: InPlaceGcm): SliceCipher {
  return {
    start: (encrypt, key, nonce, aad) => gcm.start(encrypt, key, nonce, aad),
    update(buf, n) {
      gcm.update(buf.subarray(0, n));
      return [buf.subarray(0, n)];
    },
    finishSeal(buf, n) {
      const tag = buf.subarray(n, n + TAG);
      gcm.finishSeal(tag);
      return [tag];
    },
    finishOpen: (tag) => gcm.finishOpen(tag),
  };
}

function nodeSlices(): SliceCipher {
  let c: CipherGCM | null = null;
  let d: DecipherGCM | null = null;
  return {
    start(encrypt, key, nonce, aad) {
      if (encrypt) (c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG })).setAAD(aad);
      else (d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG })).setAAD(aad);
    },
    update(buf, n) {
      const cipher = (c ?? d)!;
      const parts: Uint8Array[] = [];
      for (let off = 0; off < n; off += PIECE) parts.push(cipher.update(buf.subarray(off, Math.min(off + PIECE, n))));
      return parts;
    },
    finishSeal() {
      const fin = c!.final();
      const parts: Uint8Array[] = fin.length > 0 ? [fin, c!.getAuthTag()] : [c!.getAuthTag()];
      c = null;
      return parts;
    },
    finishOpen(tag) {
      const decipher = d!;
      d = null;
      try {
        decipher.setAuthTag(tag);
        decipher.final();
        return true;
      } catch {
        return false;
      }
    },
  };
}

/**
 * Chunk `index` of the payload (`length` bytes at `position`) → sealed at 64 + index × (C + 16).
 * Each slice is read into the next ring buffer, encrypted and written while in cache, the tag
 * last; slices end on page boundaries of the output (the 64-byte header shifts every chunk).
 */
function sealChunk(ctx: ChunkContext, index: number, position: number, length: number): ChunkFailure | null {
  const last = index === ctx.job.chunks - 1;
  ctx.cipher.start(true, ctx.key, setNonce(ctx, index, last), ctx.aad);
  let out = HEADER + index * (ctx.job.chunkSize + TAG);
  let done = 0;
  do {
    const n = Math.min(SLICE - (out % PAGE), length - done);
    const final = done + n === length;
    const buf = nextBuffer(ctx);
    if (!readSlice(ctx, index, n, position + done, final && last, buf)) return { index, kind: 'changed' };
    const parts = ctx.cipher.update(buf, n);
    if (final) parts.push(...ctx.cipher.finishSeal(buf, n));
    ctx.out.write(index, parts, out);
    out += n + (final ? TAG : 0);
    done += n;
  } while (done < length);
  return null;
}

/**
 * Sealed piece `index` (`length` bytes at `position`) → its plaintext at index × C. `reject` when
 * it does not open as chunk `index` with the final flag its place gives it, or is an empty final
 * chunk after data (the caller names the failure). Plaintext goes into the temporary output slice
 * by slice as it is decrypted, while in cache, before the chunk's tag is checked at its end:
 * holding a whole chunk back instead took a third more time (cold caches, and long writes that
 * kept the other threads waiting for their turn). A chunk that then fails authentication fails
 * the whole job, and the temporary file is deleted without ever becoming the output.
 */
function openChunk(ctx: ChunkContext, index: number, position: number, length: number): ChunkFailure | null {
  const last = index === ctx.job.chunks - 1;
  if (length < TAG) {
    return readSlice(ctx, index, length, position, last) ? { index, kind: 'reject' } : { index, kind: 'changed' };
  }
  const end = length - TAG;
  ctx.cipher.start(false, ctx.key, setNonce(ctx, index, last), ctx.aad);
  const out = index * ctx.job.chunkSize;
  let done = 0;
  let tag: Uint8Array | null = null;
  do {
    const n = Math.min(SLICE, end - done);
    const final = done + n === end;
    const buf = nextBuffer(ctx);
    // The final slice carries the tag too; it stays in this buffer, which is not reused before the check.
    if (!readSlice(ctx, index, final ? n + TAG : n, position + done, final && last, buf)) return { index, kind: 'changed' };
    if (final) tag = buf.subarray(n, n + TAG);
    const parts = ctx.cipher.update(buf, n);
    if (n > 0) ctx.out.write(index, parts, out + done);
    done += n;
  } while (done < end);
  if (!ctx.cipher.finishOpen(tag!)) return { index, kind: 'reject' };
  if (last && index > 0 && end === 0) return { index, kind: 'reject' };
  return null;
}
