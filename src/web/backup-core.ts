/**
 * The web app's backup and restore, on Blobs and Files: streamed through the same client code as
 * the CLI (src/client/backup), so the bytes are backup format v1 and the CLI reads them.
 */
import { encryptBackup } from '../client/backup/encrypt.js';
import { openBackup } from '../client/backup/decrypt.js';
import { readTar, writeTar, type TarFileInput } from '../client/backup/tar.js';
import { ArchiveGuard } from '../client/backup/tar-guard.js';
import { readableChunks } from '../client/backup/streams.js';

/** Plaintext or ciphertext gathered as a Blob without holding it whole in memory (Chromium keeps large Blobs on disk). */
export class BlobSink {
  /** Finished pieces, each a Blob of a few MiB (flat: no Blob nested in Blob). */
  private blobs: Blob[] = [];
  private parts: Uint8Array[] = [];
  private pending = 0;
  size = 0;
  constructor(private readonly foldBytes = 4 * 1024 * 1024) {}
  /** Adds bytes; every few MiB waits until the browser's Blob store has taken them (backpressure). */
  async push(p: Uint8Array): Promise<void> {
    if (p.length === 0) return;
    this.parts.push(p);
    this.pending += p.length;
    this.size += p.length;
    if (this.pending >= this.foldBytes) await this.fold();
  }
  private async fold(): Promise<void> {
    // The bytes move into the browser's Blob store (on disk when large); the arrays become garbage.
    const b = new Blob(this.parts as BlobPart[]);
    this.blobs.push(b);
    this.parts = [];
    this.pending = 0;
    // Reading the last byte completes only once the whole part has reached the Blob store, so a
    // slow browser process cannot let untransferred parts pile up in the page.
    await b.slice(b.size - 1).arrayBuffer();
  }
  async finish(type = 'application/octet-stream'): Promise<Blob> {
    if (this.pending > 0) await this.fold();
    return new Blob(this.blobs, { type });
  }
}

/** A Blob's bytes as an async iterable, counting them as they are read. */
export function blobChunks(blob: Blob, onBytes: (n: number) => void = () => {}): AsyncGenerator<Uint8Array> {
  return readableChunks(blob.stream() as ReadableStream<Uint8Array>, onBytes);
}

export interface SourceFile {
  /** Path inside the backup: the file name, or the path below the chosen folder. */
  path: string;
  file: Blob;
  mtimeMs?: number;
}

/** Path of a file chosen in a folder picker, below the chosen folder (as the CLI archives a directory). */
export function pathInFolder(f: File): string {
  const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
  const parts = rel.split('/');
  return parts.length > 1 ? parts.slice(1).join('/') : rel;
}

export interface BackupOutput {
  blob: Blob;
  kind: 'file' | 'tar';
  /** Plaintext bytes read. */
  bytes: number;
}

/**
 * Encrypts one file (payload kind "file") or several / a folder (kind "tar") under K into a
 * backup Blob. `onProgress(done, total)` reports plaintext bytes read.
 */
export async function backupToBlob(
  files: readonly SourceFile[],
  key: Uint8Array,
  opts: { asArchive: boolean; chunkSize?: number; onProgress?: (done: number, total: number) => void; sink?: (p: Uint8Array) => Promise<void> | void },
): Promise<BackupOutput> {
  const total = files.reduce((n, f) => n + f.file.size, 0);
  let done = 0;
  const count = (n: number) => {
    done += n;
    opts.onProgress?.(done, total);
  };
  const kind = opts.asArchive || files.length !== 1 ? 'tar' : 'file';
  const source: AsyncIterable<Uint8Array> =
    kind === 'file'
      ? blobChunks(files[0]!.file, count)
      : writeTar(
          files.map(
            (f): TarFileInput => ({ path: f.path, size: f.file.size, mtimeMs: f.mtimeMs ?? Date.now(), open: () => blobChunks(f.file, count) }),
          ),
        );
  const sink = new BlobSink();
  for await (const part of encryptBackup(source, { key, kind, ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}) })) {
    if (opts.sink) await opts.sink(part);
    else await sink.push(part);
  }
  opts.onProgress?.(total, total);
  return { blob: await sink.finish('application/vnd.bkv.backup'), kind, bytes: total };
}

export interface RestoredFile {
  path: string;
  blob: Blob;
}

/**
 * Decrypts a backup Blob with K. Resolves only after the final chunk authenticated; any failure
 * (wrong key, tampering, truncation) rejects with the BkvError and nothing is returned.
 * `defaultName` names the file of a single-file backup.
 */
export async function restoreFromBlob(
  backup: Blob,
  key: Uint8Array,
  opts: { defaultName: string; onProgress?: (done: number, total: number) => void },
): Promise<{ kind: 'file' | 'tar'; files: RestoredFile[] }> {
  let done = 0;
  const total = backup.size;
  const opened = await openBackup(
    blobChunks(backup, (n) => {
      done += n;
      opts.onProgress?.(done, total);
    }),
    { key },
  );
  if (opened.header.kind === 'file') {
    const sink = new BlobSink();
    for await (const p of opened.plaintext) await sink.push(p);
    return { kind: 'file', files: [{ path: opts.defaultName, blob: await sink.finish() }] };
  }
  const files: RestoredFile[] = [];
  // readTar closes its source when it meets the end-of-archive blocks; keep the plaintext open so
  // that the rest of the backup is still read and authenticated below.
  const it = opened.plaintext;
  const unclosable: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: () => it.next() }) };
  const guard = new ArchiveGuard(); // the CLI's rules: a duplicate or a path through a link is refused
  for await (const entry of readTar(unclosable)) {
    guard.admit(entry);
    if (entry.type !== 'file') continue;
    const sink = new BlobSink();
    for await (const p of entry.body) await sink.push(p);
    files.push({ path: entry.path, blob: await sink.finish() });
  }
  // readTar stops at the end-of-archive blocks: drain the rest so the final chunk is authenticated.
  for (let r = await it.next(); !r.done; r = await it.next()) void r;
  return { kind: 'tar', files };
}
