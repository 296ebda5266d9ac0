/**
 * A streaming tar reader (POSIX ustar with pax extended headers, and GNU long names), browser-safe.
 * It reads the archives node-tar and tar.ts write. Strict: anything it cannot read exactly as
 * every other reader would is refused rather than guessed at, with BkvError('BAD_ARCHIVE'): a bad
 * checksum or number, an absolute path or a `..` component, a NUL in a name, an entry type other
 * than file, directory, symbolic link or hard link, a non-file entry with data, an archive cut
 * inside an entry. What may be created where (duplicates, paths through links) is tar-guard.ts.
 */
import { BkvError } from '../../shared/errors.js';
import { ByteReader } from './byte-reader.js';

const BLOCK = 512;
const td = new TextDecoder('utf-8', { fatal: true });

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink';

export interface TarEntry {
  /** Normalised relative path: `/` separators, no `.`, `..` or empty parts. */
  path: string;
  type: TarEntryType;
  /** Bytes of a file; 0 for the other types. */
  size: number;
  /** Modification time in milliseconds since the epoch (0 when the archive has none). */
  mtimeMs: number;
  /** Permission bits from the header (mode & 0o7777). */
  mode: number;
  /** A symbolic link's target as stored; a hard link's target as a normalised path; else ''. */
  linkpath: string;
  /** The entry's bytes; must be read (or drained) before the next entry is requested. */
  body: AsyncIterable<Uint8Array>;
}

const bad = (message: string, details: Record<string, unknown> = {}) => new BkvError('BAD_ARCHIVE', message, details);

/**
 * Checks and normalises a path read from an archive: relative, no `..`, no NUL. Returns '' for
 * the archive's root (`.` or `./`); the caller decides whether that is allowed.
 */
export function archivePath(path: string): string {
  const name = JSON.stringify(path);
  if (path.includes('\0')) throw bad(`unsafe archive: the path ${name} holds a NUL`, { path });
  const unified = path.replace(/\\/g, '/');
  const parts = unified.split('/').filter((p) => p !== '' && p !== '.');
  if (unified.startsWith('/') || /^[A-Za-z]:/.test(unified)) throw bad(`unsafe archive: the path ${name} is absolute`, { path });
  if (parts.includes('..')) throw bad(`unsafe archive: the path ${name} climbs out with ..`, { path });
  return parts.join('/');
}

function readOctal(h: Uint8Array, off: number, len: number, what: string): number {
  const field = h.subarray(off, off + len);
  if (field[0]! & 0x80) {
    // base-256 (GNU/node-tar for large values); a negative number (0xff) is refused
    if (field[0] === 0xff) throw bad(`archive header has a negative ${what}`);
    let v = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    if (!Number.isSafeInteger(v)) throw bad(`archive header has an oversized ${what}`);
    return v;
  }
  const s = String.fromCharCode(...field).replace(/[\0 ]+$/g, '').replace(/^[\0 ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(`archive header has an invalid ${what}`);
  return parseInt(s, 8);
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  try {
    return td.decode(end < 0 ? b : b.subarray(0, end));
  } catch {
    throw bad('archive has a name that is not UTF-8');
  }
}

function parsePax(body: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const sp = body.indexOf(0x20, i);
    if (sp < 0) throw bad('archive has an invalid pax header');
    const len = Number(String.fromCharCode(...body.subarray(i, sp)));
    if (!Number.isInteger(len) || len <= sp - i + 1 || i + len > body.length || body[i + len - 1] !== 0x0a) {
      throw bad('archive has an invalid pax header');
    }
    let rec: string;
    try {
      rec = td.decode(body.subarray(sp + 1, i + len - 1));
    } catch {
      throw bad('archive has a pax header that is not UTF-8');
    }
    const eq = rec.indexOf('=');
    if (eq <= 0) throw bad('archive has an invalid pax header');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

async function collect(reader: ByteReader, n: number): Promise<Uint8Array> {
  if (n > 1024 * 1024) throw bad('archive has an oversized extended header');
  const b = (await reader.read(n)).slice();
  if (b.length < n) throw bad('archive ends inside an extended header');
  const pad = (BLOCK - (n % BLOCK)) % BLOCK;
  if ((await reader.read(pad)).length < pad) throw bad('archive ends inside an extended header');
  return b;
}

const TYPES: Record<string, TarEntryType> = { '0': 'file', '\0': 'file', '7': 'file', '5': 'directory', '2': 'symlink', '1': 'hardlink' };
const TYPE_NAMES: Record<string, string> = { '3': 'character device', '4': 'block device', '6': 'FIFO', S: 'GNU sparse file', D: 'GNU dump directory', V: 'volume label', M: 'multi-volume continuation' };

/**
 * Reads a tar archive entry by entry (see the file comment for what is refused); an empty input is
 * an empty archive. Stops at the first all-zero block and closes its source; a caller that must read the source to its end (to
 * authenticate a backup's final chunk) passes a source that ignores the close.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry, void, undefined> {
  const reader = new ByteReader(source);
  try {
    let pax: Record<string, string> = {};
    let longName: string | undefined;
    let longLink: string | undefined;
    for (let first = true; ; first = false) {
      const h = (await reader.read(BLOCK)).slice();
      if (h.length === 0 && first) return; // an empty payload is an empty archive (an empty directory)
      if (h.length === 0) throw bad('archive ends without its end-of-archive blocks');
      if (h.length < BLOCK) throw bad('archive ends inside a header');
      if (h.every((b) => b === 0)) return;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      if (sum !== readOctal(h, 148, 8, 'checksum')) throw bad('archive header checksum does not match');
      const flag = String.fromCharCode(h[156]!);
      let size = readOctal(h, 124, 12, 'size');
      if (flag === 'x' || flag === 'g') {
        const records = parsePax(await collect(reader, size));
        if (flag === 'x') pax = records;
        else if ('path' in records || 'linkpath' in records || 'size' in records) {
          throw bad('archive has a global header that sets a path or size, which bkv does not read');
        }
        continue;
      }
      if (flag === 'L' || flag === 'K') {
        const name = cString(await collect(reader, size));
        if (flag === 'L') longName = name;
        else longLink = name;
        continue;
      }
      const isPosix = String.fromCharCode(...h.subarray(257, 263)) === 'ustar\0';
      const prefix = isPosix ? cString(h.subarray(345, 500)) : '';
      const rawName = cString(h.subarray(0, 100));
      const rawPath = pax.path ?? longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
      const rawLink = pax.linkpath ?? longLink ?? cString(h.subarray(157, 257));
      if (pax.size !== undefined) {
        if (!/^\d{1,15}$/.test(pax.size)) throw bad(`archive has an invalid size for ${JSON.stringify(rawPath)}`);
        size = Number(pax.size);
      }
      pax = {};
      longName = longLink = undefined;
      const type = TYPES[flag];
      if (!type) {
        const what = TYPE_NAMES[flag] ?? `type ${JSON.stringify(flag)}`;
        throw bad(`archive entry ${JSON.stringify(rawPath)} is a ${what}, which bkv does not restore`, { path: rawPath });
      }
      if (type !== 'file' && size !== 0) throw bad(`archive entry ${JSON.stringify(rawPath)} is a ${type} with data`, { path: rawPath });
      const path = archivePath(rawPath);
      if (path === '' && type !== 'directory') throw bad(`archive has a ${type} with an empty name`);
      let linkpath = '';
      if (type === 'hardlink') linkpath = archivePath(rawLink);
      if (type === 'symlink') {
        if (rawLink === '' || rawLink.includes('\0')) throw bad(`symbolic link ${JSON.stringify(path)} has no valid target`, { path });
        linkpath = rawLink;
      }
      const mode = readOctal(h, 100, 8, 'mode') & 0o7777;
      const mtimeMs = readOctal(h, 136, 12, 'mtime') * 1000;
      let remaining = size;
      async function* body(): AsyncGenerator<Uint8Array> {
        while (remaining > 0) {
          const piece = await reader.read(Math.min(remaining, 256 * 1024));
          if (piece.length === 0) throw bad(`archive ends inside ${path}`, { path });
          remaining -= piece.length;
          yield piece;
        }
      }
      if (path !== '') yield { path, type, size, mtimeMs, mode, linkpath, body: body() };
      // Skip whatever the caller left unread, then the padding.
      for await (const _ of body()) void _;
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if ((await reader.read(pad)).length < pad) throw bad(`archive ends inside ${path}`, { path });
    }
  } finally {
    await reader.close();
  }
}
