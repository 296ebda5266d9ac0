import { chmod, lstat, mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BkvError } from '../shared/errors.js';
import { drainToFile } from './file-sink.js';
import { ioError } from './io-errors.js';

/**
 * Outputs appear only complete: data goes to a temporary name next to the target (same directory,
 * so the final rename is atomic) and is renamed into place only after it was fully written and,
 * for restores, fully authenticated. On any failure the temporary file or directory is removed.
 */

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A temporary path beside `target`, hidden and unique. */
export function tempPathFor(target: string): string {
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join('');
  return join(dirname(target), `.${basename(target)}.bkv-tmp-${rand}`);
}

/** Refuses an existing output unless `force`; checks the parent directory exists. */
export async function checkOutput(target: string, force: boolean): Promise<void> {
  if ((await exists(target)) && !force) {
    throw new BkvError('IO', `output ${target} already exists (use --force to overwrite)`, { path: target });
  }
  const parent = dirname(target);
  let st;
  try {
    st = await stat(parent);
  } catch (err) {
    throw ioError(err, 'write to directory', parent);
  }
  if (!st.isDirectory()) throw new BkvError('IO', `cannot write to ${parent}: not a directory`, { path: parent });
}

/**
 * Creates `target` atomically: `fill` writes into a new temporary file (mode 0600) beside it, which
 * is renamed into place once `fill` resolved. If `fill` throws (for example a chunk fails
 * authentication), the temp file is deleted and the error rethrown (file-system errors as IO).
 */
export async function writeFileAtomicWith(target: string, force: boolean, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  await checkOutput(target, force);
  const tmp = tempPathFor(target);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fill(fh);
    } finally {
      await fh.close();
    }
    await replace(tmp, target, force);
  } catch (err) {
    await rm(tmp, { force: true, recursive: true }).catch(() => {});
    throw ioError(err, 'write', target);
  }
}

/** Writes a stream to `target` atomically (see writeFileAtomicWith). */
export async function writeFileAtomic(target: string, source: AsyncIterable<Uint8Array>, force: boolean): Promise<void> {
  await writeFileAtomicWith(target, force, async (fh) => {
    await drainToFile(fh, source);
  });
}

/** Creates an empty temporary directory beside `target` for an atomic directory output. */
export async function makeTempDir(target: string, force: boolean): Promise<string> {
  await checkOutput(target, force);
  const tmp = tempPathFor(target);
  try {
    await mkdir(tmp, { mode: 0o700 });
  } catch (err) {
    throw ioError(err, 'write', target);
  }
  return tmp;
}

/** Moves a finished temp file or directory onto `target`, replacing it only when `force`. */
export async function replace(tmp: string, target: string, force: boolean): Promise<void> {
  if (await exists(target)) {
    if (!force) throw new BkvError('IO', `output ${target} already exists (use --force to overwrite)`, { path: target });
    const st = await lstat(target);
    if (st.isDirectory()) {
      // rename() cannot replace a non-empty directory: move the old one aside first.
      const old = tempPathFor(target);
      await rename(target, old);
      await rename(tmp, target);
      await removeTemp(old);
      return;
    }
  }
  await rename(tmp, target);
}

/**
 * Removes a temporary file or directory and everything in it, also directories a restored archive
 * made unwritable (mode 0500): those are made writable first. Never throws.
 */
export async function removeTemp(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch {
    await makeWritable(path).catch(() => {});
    await rm(path, { recursive: true, force: true }).catch(() => {});
  }
}

async function makeWritable(path: string): Promise<void> {
  if (!(await lstat(path)).isDirectory()) return;
  await chmod(path, 0o700);
  for (const name of await readdir(path)) await makeWritable(join(path, name));
}
