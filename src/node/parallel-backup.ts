import { open, type FileHandle } from 'node:fs/promises';
import { BkvError } from '../shared/errors.js';
import { assertBackupKey } from '../client/keys/backup-key.js';
import { checkBackupKey, openPiece } from '../client/backup/decrypt.js';
import { newBackup } from '../client/backup/encrypt.js';
import { HEADER_BYTES, TAG_BYTES, decodeHeader } from '../client/backup/header.js';
import { MAX_CHUNKS, derivePayloadKeys } from '../client/backup/subkeys.js';
import { fastAesGcm } from './aes-gcm.js';
import { writeFileAtomicWith } from './atomic-output.js';
import { ACTIVE, CONTROL_BYTES, DONE, FINISHED, STOP, runChunkJob, type ChunkFailure, type ChunkJob } from './chunk-job.js';
import { prestartWorkers, takeWorkers, workerThreadsFor } from './worker-pool.js';
import { ioError } from './io-errors.js';
import { preallocate } from './preallocate.js';

/**
 * The parallel path for a regular file in and a regular file out. Chunks are independent (STREAM
 * nonces carry the counter and the final flag) and every chunk's offsets follow from the sizes, so
 * a pool of worker threads (src/node/worker-pool.ts) each claims chunk indices, reads, seals or
 * opens, and writes whole chunks at their offsets in a temporary file (src/node/chunk-job.ts),
 * while this thread hands out the job and waits (or, with `mainThreadWorks`, computes too). The
 * output is renamed into place only after every chunk was written (create) or authenticated
 * (restore). The header is written (create) or parsed and checked (restore) here first, and a
 * failing chunk is named by the streaming reader's rules (`openPiece`), so both paths fail with
 * the same errors.
 */

/**
 * Payload bytes between two young-generation collections in each thread (frees cipher outputs).
 * Each costs ~0.1 ms: every 1 MiB they took 15 % of the CPU; every 2 MiB, with KEEP_FREED_BYTES
 * at 4 MiB, was fastest (4 MiB: no faster and 5 MB more memory).
 */
const GC_EVERY_BYTES = 2 * 1024 * 1024;
/** How often progress is reported while the pool works. */
const PROGRESS_MS = 100;

/**
 * Runs `job` on `workers` threads; resolves once no thread can still use the file descriptors,
 * with the failure at the lowest chunk index, or null when every chunk was processed and written.
 * That is when every thread has reported, or sooner, when every chunk is finished and no thread
 * is inside a chunk job: a thread still starting up then finds every chunk claimed and does no
 * I/O, so it is stopped instead of waited for. A file that the first threads finish alone (tens
 * of MB, while a new thread takes 30–100 ms to start) thus does not wait for the others to start.
 */
async function runPool(
  job: Omit<ChunkJob, 'control' | 'gcEveryBytes' | 'aes'>,
  o: { workers: number; mainThreadWorks: boolean; aes: 'auto' | 'node'; onProgress?: (bytes: number) => void },
): Promise<ChunkFailure | null> {
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const ctl = new BigInt64Array(control);
  ctl[STOP] = BigInt(job.chunks);
  const failures: ChunkFailure[] = [];
  let crash: unknown = null;
  const full: ChunkJob = { ...job, control, gcEveryBytes: GC_EVERY_BYTES, aes: o.aes };
  let reported = 0n;
  const report = () => {
    const done = Atomics.load(ctl, DONE);
    if (done > reported) o.onProgress?.(Number(done - reported));
    reported = done;
  };
  const threads = Math.max(1, Math.min(o.workers, job.chunks));
  const pool = takeWorkers(workerThreadsFor(threads, o.mainThreadWorks));
  let timer: ReturnType<typeof setInterval> | null = null;
  const running = new Set(pool);
  let allFinished = () => {};
  const finished = new Promise<void>((resolve) => (allFinished = resolve));
  const checkFinished = () => {
    if (Atomics.load(ctl, FINISHED) === BigInt(job.chunks) && Atomics.load(ctl, ACTIVE) === 0n) allFinished();
  };
  // A thread is done with the files once it has posted its result (or has died).
  const settled = pool.map(
    (w) =>
      new Promise<void>((resolve) => {
        w.on('message', (m: { failure: ChunkFailure | null }) => {
          if (m.failure) failures.push(m.failure);
          w.unref(); // it exits by itself
          running.delete(w);
          resolve();
          checkFinished();
        });
        w.on('error', (err) => {
          crash ??= err;
          Atomics.store(ctl, STOP, 0n);
        });
        w.on('exit', () => {
          running.delete(w);
          resolve();
        });
      }),
  );
  try {
    for (const w of pool) {
      w.ref();
      w.postMessage(full);
    }
    if (o.mainThreadWorks) {
      // This thread computes too (its event loop waits meanwhile), reporting progress itself.
      let due = performance.now() + PROGRESS_MS;
      const failure = runChunkJob(full, () => {
        if (o.onProgress && performance.now() >= due) {
          report();
          due = performance.now() + PROGRESS_MS;
        }
        return true;
      });
      if (failure) failures.push(failure);
      checkFinished();
    }
    if (o.onProgress) timer = setInterval(report, PROGRESS_MS);
  } catch (err) {
    crash ??= err;
    Atomics.store(ctl, STOP, 0n);
    for (const w of pool) void w.terminate();
  } finally {
    // Only once no thread can use the files may the caller close them.
    await Promise.race([Promise.all(settled), finished]);
    for (const w of running) void w.terminate(); // still starting: it would find nothing to do
    if (timer) clearInterval(timer);
  }
  if (crash) throw new BkvError('INTERNAL', `a worker thread failed: ${(crash as Error)?.message ?? crash}`);
  report();
  const failure = failures.reduce<ChunkFailure | null>((a, f) => (a === null || f.index < a.index ? f : a), null);
  if (!failure && Atomics.load(ctl, FINISHED) !== BigInt(job.chunks)) {
    throw new BkvError('INTERNAL', `a worker thread stopped before its chunks were done (${Atomics.load(ctl, FINISHED)} of ${job.chunks})`);
  }
  return failure;
}

async function openInput(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw ioError(err, 'read', path);
  }
}

async function sizeOf(fh: FileHandle, path: string): Promise<number> {
  try {
    return (await fh.stat()).size;
  } catch (err) {
    throw ioError(err, 'read', path);
  }
}

async function readAt(fh: FileHandle, path: string, length: number, position: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(Math.max(0, length));
  let got = 0;
  try {
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } catch (err) {
    throw ioError(err, 'read', path);
  }
  return buf.subarray(0, got);
}

function changedError(path: string, what: string): BkvError {
  return new BkvError('IO', `cannot read ${path}: ${what} changed size while it was being read`, { path });
}

function failureError(f: ChunkFailure, input: string, output: string, what: string): BkvError {
  if (f.kind === 'io') return ioError(f, f.op, f.op === 'read' ? input : output);
  return changedError(input, what);
}

export interface ParallelFileOptions {
  input: string;
  output: string;
  key: Uint8Array;
  force: boolean;
  /** Threads that compute (at least 1). */
  workers: number;
  /**
   * The calling thread is one of them, so one thread fewer is started; its event loop waits
   * until the job is done. For processes that do nothing else meanwhile, like the CLI.
   */
  mainThreadWorks: boolean;
  /** AES-256-GCM in place through the addon when available ('auto'), or node:crypto ('node'). */
  aes: 'auto' | 'node';
  onProgress?: (bytes: number) => void;
}

/** Encrypts the regular file `input` into a backup at `output` (payload kind 'file'), atomically. */
export async function createBackupParallel(o: ParallelFileOptions & { chunkSize?: number }): Promise<void> {
  prestartWorkers(workerThreadsFor(o.workers, o.mainThreadWorks)); // they start while the files are opened
  const backup = newBackup({ key: o.key, kind: 'file', ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}) });
  const fh = await openInput(o.input);
  try {
    const size = await sizeOf(fh, o.input);
    const chunks = Math.max(1, Math.ceil(size / backup.chunkSize));
    if (chunks > MAX_CHUNKS) throw new BkvError('USAGE', 'backup too large: chunk counter overflow (use a larger chunk size)');
    await writeFileAtomicWith(o.output, o.force, async (out) => {
      preallocate(out.fd, HEADER_BYTES + size + chunks * TAG_BYTES); // a full disk fails here, before any work
      await out.write(backup.header, 0, backup.header.length, 0);
      const job = {
        mode: 'seal' as const,
        inFd: fh.fd,
        outFd: out.fd,
        key: backup.payloadKey,
        prefix: backup.noncePrefix,
        aad: backup.header,
        chunkSize: backup.chunkSize,
        inputSize: size,
        chunks,
      };
      const failure = await runPool(job, o);
      if (failure) throw failureError(failure, o.input, o.output, 'the file');
      if ((await sizeOf(fh, o.input)) !== size) throw changedError(o.input, 'the file');
    });
  } finally {
    await fh.close();
  }
}

/**
 * Decrypts the backup `input` to the regular file `output`, atomically, checking the header and
 * key first exactly as the streaming reader does. Resolves to null, having written nothing, when
 * the backup holds a directory (the caller streams it to tar) or is too large to count in chunks.
 */
export async function restoreBackupParallel(o: ParallelFileOptions): Promise<{ bytes: number } | null> {
  assertBackupKey(o.key);
  const fh = await openInput(o.input);
  try {
    const size = await sizeOf(fh, o.input);
    const headerBytes = await readAt(fh, o.input, Math.min(HEADER_BYTES, size), 0);
    const header = decodeHeader(headerBytes);
    if (header.kind !== 'file') return null;
    prestartWorkers(workerThreadsFor(o.workers, o.mainThreadWorks)); // they start while the key is checked
    const { payloadKey, noncePrefix } = derivePayloadKeys(o.key, header.salt);
    const cipher = await fastAesGcm(payloadKey);
    const pieceSize = header.chunkSize + TAG_BYTES;
    const payload = size - HEADER_BYTES;
    const chunks = Math.ceil(payload / pieceSize);
    const piece = (i: number) => readAt(fh, o.input, Math.min(pieceSize, payload - i * pieceSize), HEADER_BYTES + i * pieceSize);
    await checkBackupKey(o.key, headerBytes, cipher, noncePrefix, await piece(0));
    if (chunks === 0) await openPiece(cipher, noncePrefix, headerBytes, 0, new Uint8Array(0), false); // throws TRUNCATED
    if (chunks > MAX_CHUNKS) return null;
    o.onProgress?.(HEADER_BYTES);
    await writeFileAtomicWith(o.output, o.force, async (out) => {
      preallocate(out.fd, payload - chunks * TAG_BYTES); // the plaintext's size, known from the backup's
      const job = {
        mode: 'open' as const,
        inFd: fh.fd,
        outFd: out.fd,
        key: payloadKey,
        prefix: noncePrefix,
        aad: headerBytes,
        chunkSize: header.chunkSize,
        inputSize: size,
        chunks,
      };
      const failure = await runPool(job, o);
      if (failure?.kind === 'reject') {
        // Name it as the streaming reader would (it stops at this same chunk, the first bad one).
        const i = failure.index;
        await openPiece(cipher, noncePrefix, headerBytes, i, await piece(i), i < chunks - 1);
      }
      if (failure) throw failureError(failure, o.input, o.output, 'the backup');
      if ((await sizeOf(fh, o.input)) !== size) throw changedError(o.input, 'the backup');
    });
    return { bytes: payload - chunks * TAG_BYTES };
  } finally {
    await fh.close();
  }
}
