import { constants } from 'node:fs';
import { chmod, link, lstat, lutimes, mkdir, open, symlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { readTar, type TarEntry } from '../client/backup/tar-reader.js';
import { ArchiveGuard } from '../client/backup/tar-guard.js';
import { ioError } from './io-errors.js';

/** Errors that, inside a new directory only we write to, can only come from the archive. */
const ARCHIVE_ERRNOS = new Set(['EEXIST', 'ELOOP', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'EMLINK']);
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Extracts a tar stream into `dir`, a new empty directory, reading `source` to its end (so that a
 * backup's final chunk is authenticated before this resolves). Every entry is checked by
 * readTar (paths, types) and ArchiveGuard (duplicates, paths through links) before anything is
 * created, and created so that it cannot replace or follow anything (O_EXCL | O_NOFOLLOW, mkdir,
 * symlink and link fail on an existing name). Files get the archive's permission bits less the
 * umask, and its mtimes; owners are not restored. Everything is awaited before this settles, so a
 * caller that removes `dir` on failure removes all of it. Errors: BAD_ARCHIVE, the source's own
 * (TAMPERED, TRUNCATED, ...), IO.
 */
export async function extractArchive(dir: string, source: AsyncIterable<Uint8Array>): Promise<void> {
  const it = source[Symbol.asyncIterator]();
  // readTar stops at the end-of-archive blocks and closes its source: keep ours open to drain it.
  const unclosable: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: () => it.next() }) };
  const guard = new ArchiveGuard();
  const dirs: TarEntry[] = [];
  try {
    for await (const entry of readTar(unclosable)) {
      for (const parent of guard.admit(entry)) await create(() => mkdir(join(dir, parent), 0o700), parent);
      await extractEntry(dir, entry, dirs);
    }
    // Whatever follows the end-of-archive blocks is read (and authenticated), never extracted.
    for (let r = await it.next(); !r.done; r = await it.next()) void r;
  } finally {
    await it.return?.(undefined);
  }
  // Directories last, deepest first: their own mtimes, and modes that would have kept us out.
  for (const d of dirs.reverse()) {
    const path = join(dir, d.path);
    if ((d.mode & 0o700) !== 0o700) {
      const now = (await lstat(path)).mode & 0o777;
      await create(() => chmod(path, now & ~(0o700 & ~d.mode)), d.path);
    }
    if (d.mtimeMs > 0) await create(() => utimes(path, d.mtimeMs / 1000, d.mtimeMs / 1000), d.path);
  }
}

async function extractEntry(dir: string, entry: TarEntry, dirs: TarEntry[]): Promise<void> {
  const path = join(dir, entry.path);
  const seconds = entry.mtimeMs / 1000;
  switch (entry.type) {
    case 'directory':
      dirs.push(entry);
      // An existing name here is a parent made for an earlier entry (ArchiveGuard allows only that);
      // it keeps mode 0700 | umask'd bits it was made with.
      await create(() => mkdir(path, (entry.mode & 0o777) | 0o700), entry.path).catch((err: unknown) => {
        if ((err as BkvError).details?.errno !== 'EEXIST') throw err;
      });
      return;
    case 'symlink':
      await create(() => symlink(entry.linkpath, path), entry.path);
      if (entry.mtimeMs > 0) await create(() => lutimes(path, seconds, seconds), entry.path);
      return;
    case 'hardlink':
      await create(() => link(join(dir, entry.linkpath), path), entry.path);
      return;
    case 'file': {
      const fh = await create(() => open(path, CREATE_NEW, entry.mode & 0o777), entry.path);
      try {
        await writeAll(fh, entry.body);
        if (entry.mtimeMs > 0) await fh.utimes(seconds, seconds);
      } catch (err) {
        throw errorFor(err, entry.path);
      } finally {
        await fh.close();
      }
      return;
    }
  }
}

/**
 * Writes a file's pieces (views into authenticated chunks) one after another. Sequential writes
 * kept a 512 MiB directory restore at node-tar's speed and ~88 MB of RSS; drainToFile's batches
 * in flight held ~6 MB more for no gain.
 */
async function writeAll(fh: FileHandle, pieces: AsyncIterable<Uint8Array>): Promise<void> {
  let position = 0;
  for await (const piece of pieces) {
    for (let off = 0; off < piece.length; ) {
      const { bytesWritten } = await fh.write(piece, off, piece.length - off, position);
      off += bytesWritten;
      position += bytesWritten;
    }
  }
}

/** Runs one file-system call for archive entry `name`, naming its failure. */
async function create<T>(call: () => Promise<T>, name: string): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw errorFor(err, name);
  }
}

function errorFor(err: unknown, name: string): BkvError {
  if (err instanceof BkvError) return err;
  const errno = (err as NodeJS.ErrnoException)?.code;
  if (errno && ARCHIVE_ERRNOS.has(errno)) {
    return new BkvError('BAD_ARCHIVE', `unsafe archive: cannot create ${JSON.stringify(name)} (${errno})`, { path: name, errno });
  }
  return ioError(err, 'create', name);
}
