import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { encryptBackup } from '../client/backup/encrypt.js';
import { openBackup } from '../client/backup/decrypt.js';
import { DEFAULT_CHUNK_SIZE, type PayloadKind } from '../client/backup/header.js';
import { fastAesGcm } from './aes-gcm.js';
import { checkOutput, makeTempDir, removeTemp, replace, writeFileAtomic } from './atomic-output.js';
import { readBackupPieces, readFileChunks, regularFileSize } from './file-source.js';
import { gcPacer, keepFreedMemory } from './gc-pacer.js';
import { ioError } from './io-errors.js';
import { createBackupParallel, restoreBackupParallel } from './parallel-backup.js';
import { PARALLEL_MIN_BYTES, defaultWorkers } from './worker-pool.js';
import { packDirectory } from './tar-stream.js';
import { extractArchive } from './tar-extract.js';
import { writeToStream } from './byte-streams.js';

/** Called with the number of bytes just processed (payload bytes on create, backup bytes on restore). */
export type ProgressFn = (bytes: number) => void;

/**
 * A regular file of at least `parallelMinBytes` (default PARALLEL_MIN_BYTES, 8 MiB) is encrypted
 * or restored by a pool of `workers` threads (default: one per core, at most 2; none on a single
 * core) reading and writing chunks at their offsets (src/node/parallel-backup.ts); smaller files,
 * directories and workers < 1 take the streaming path. Same format and errors either way.
 */
export interface ParallelChoice {
  parallelMinBytes?: number;
  workers?: number;
  /**
   * The calling thread computes too, so one thread fewer is started (default false). Its event
   * loop waits until the backup is done: for processes that do nothing else, like the CLI.
   */
  mainThreadWorks?: boolean;
  /**
   * AES-256-GCM of the parallel path: 'auto' (default) encrypts in place through the addon of
   * src/node/native-aes-gcm.ts when it is available, 'node' always uses node:crypto. Same bytes.
   */
  aes?: 'auto' | 'node';
}

/**
 * Streams in place of files (the CLI's `-`): `inputStream` is read instead of the file `input`,
 * `outputStream` written instead of creating `output`; `input` and `output` then only name them
 * in messages. Such a backup always takes the streaming path.
 */
export interface StreamEnds {
  inputStream?: AsyncIterable<Uint8Array>;
  outputStream?: NodeJS.WritableStream;
}

export interface CreateBackupFileOptions extends ParallelChoice, StreamEnds {
  input: string;
  output: string;
  key: Uint8Array;
  chunkSize?: number;
  force?: boolean;
  onProgress?: ProgressFn;
}

/** Threads for a file of `size` bytes, or 0 for the streaming path. */
function workersFor(size: number, o: ParallelChoice): number {
  if (size < (o.parallelMinBytes ?? PARALLEL_MIN_BYTES)) return 0;
  return Math.max(0, Math.floor(o.workers ?? defaultWorkers()));
}

/**
 * Bytes between collections while packing a directory: node-tar allocates a fresh buffer for every
 * read on top of our chunk buffers, so it collects twice as often as the file path (GC_EVERY_BYTES):
 * a 1 GiB directory backup peaked at 94–99 MB through the CLI with 4 MiB, 82–90 MB with 2 MiB.
 * Not more often: every 1 MiB it reached 137 MB (buffers still in use at two collections are
 * promoted to the old generation, and wait there for a full collection).
 */
const TAR_GC_EVERY_BYTES = 2 * 1024 * 1024;

async function* counted(source: AsyncIterable<Uint8Array>, onProgress?: ProgressFn, gcEveryBytes?: number): AsyncGenerator<Uint8Array> {
  const pace = gcPacer(gcEveryBytes);
  for await (const chunk of source) {
    onProgress?.(chunk.length);
    pace(chunk.length);
    yield chunk;
  }
}

/** What `input` is: a file, a directory, or an error. */
export async function inputKind(input: string): Promise<PayloadKind> {
  let st;
  try {
    st = await stat(input);
  } catch (err) {
    throw ioError(err, 'read', input);
  }
  if (st.isDirectory()) return 'tar';
  if (st.isFile()) return 'file';
  throw new BkvError('IO', `cannot back up ${input}: not a regular file or directory`, { path: input });
}

/**
 * Encrypts a file or a directory (as tar), or an input stream (as a file), to a backup file,
 * atomically, or to an output stream. Returns the payload kind.
 */
export async function createBackupFile(o: CreateBackupFileOptions): Promise<{ kind: PayloadKind }> {
  const kind = o.inputStream ? 'file' : await inputKind(o.input);
  const streams = !!(o.inputStream || o.outputStream);
  const workers = kind === 'file' && !streams ? workersFor(await regularFileSize(o.input), o) : 0;
  if (workers > 0) {
    const { input, output, key, chunkSize, onProgress } = o;
    const mainThreadWorks = o.mainThreadWorks ?? false;
    await createBackupParallel({ input, output, key, force: o.force ?? false, workers, mainThreadWorks, aes: o.aes ?? 'auto', ...(chunkSize ? { chunkSize } : {}), ...(onProgress ? { onProgress } : {}) });
    return { kind };
  }
  keepFreedMemory(); // node:crypto's outputs: see gc-pacer.ts
  // A backup written inside the directory it archives must not archive itself (or its temp file).
  const out = resolve(o.output);
  const skip = (p: string) => p === out || (dirname(p) === dirname(out) && basename(p).startsWith(`.${basename(out)}.bkv-tmp-`));
  const payload = o.inputStream ?? (kind === 'tar' ? packDirectory(o.input, o.outputStream ? undefined : skip) : readFileChunks(o.input, o.chunkSize ?? DEFAULT_CHUNK_SIZE, true));
  const encOptions = { key: o.key, kind, cipher: fastAesGcm, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}) };
  const pacing = kind === 'tar' ? TAR_GC_EVERY_BYTES : undefined;
  const sealed = encryptBackup(counted(payload, o.onProgress, pacing), encOptions);
  if (o.outputStream) await writeToStream(o.outputStream, sealed, o.output);
  else await writeFileAtomic(o.output, sealed, o.force ?? false);
  return { kind };
}

export interface RestoreBackupFileOptions extends ParallelChoice, StreamEnds {
  input: string;
  output: string;
  key: Uint8Array;
  force?: boolean;
  onProgress?: ProgressFn;
}

/**
 * Decrypts a backup file or input stream to a file or directory (as its header says). The output
 * appears only after the final chunk authenticated; on any error nothing is left behind. To an
 * output stream, the payload itself is written (a directory's as its tar archive), each chunk once
 * it authenticated: a failure then comes after the chunks before it were written, and its message
 * says that the output is incomplete.
 */
export async function restoreBackupFile(o: RestoreBackupFileOptions): Promise<{ kind: PayloadKind; bytes: number }> {
  const size = o.inputStream ? 0 : await regularFileSize(o.input);
  if (!o.outputStream) await checkOutput(o.output, o.force ?? false);
  const workers = o.inputStream || o.outputStream ? 0 : workersFor(size, o);
  if (workers > 0) {
    const { input, output, key, onProgress } = o;
    const mainThreadWorks = o.mainThreadWorks ?? false;
    const done = await restoreBackupParallel({ input, output, key, force: o.force ?? false, workers, mainThreadWorks, aes: o.aes ?? 'auto', ...(onProgress ? { onProgress } : {}) });
    if (done) return { kind: 'file', bytes: done.bytes };
  }
  keepFreedMemory(); // node:crypto's outputs: see gc-pacer.ts
  const { header, plaintext } = await openBackup(counted(o.inputStream ?? readBackupPieces(o.input, true), o.onProgress), {
    key: o.key,
    cipher: fastAesGcm,
  });
  let bytes = 0;
  async function* measured() {
    for await (const chunk of plaintext) {
      bytes += chunk.length;
      yield chunk;
    }
  }
  if (o.outputStream) {
    try {
      await writeToStream(o.outputStream, measured(), o.output);
    } catch (err) {
      throw incomplete(err, bytes, o.output);
    } finally {
      await plaintext.return(undefined).catch(() => {});
    }
  } else if (header.kind === 'file') {
    try {
      await writeFileAtomic(o.output, measured(), o.force ?? false);
    } finally {
      await plaintext.return(undefined).catch(() => {}); // closes the input if writing failed early
    }
  } else {
    let tmp: string | null = null;
    try {
      tmp = await makeTempDir(o.output, o.force ?? false);
      await extractArchive(tmp, measured());
      await replace(tmp, o.output, o.force ?? false);
      tmp = null;
    } catch (err) {
      await plaintext.return(undefined).catch(() => {});
      throw ioError(err, 'write', o.output);
    } finally {
      if (tmp) await removeTemp(tmp);
    }
  }
  return { kind: header.kind, bytes };
}

/** A failure after `bytes` authenticated bytes went to an output stream: the message says so. */
function incomplete(err: unknown, bytes: number, name: string): unknown {
  if (!(err instanceof BkvError) || bytes === 0) return err;
  const note = `; the ${bytes} bytes written to ${name} before this are authenticated but incomplete: discard them`;
  return new BkvError(err.code, err.message + note, { ...err.details, bytesWritten: bytes });
}
