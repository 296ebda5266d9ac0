/**
 * A streaming tar writer (POSIX ustar with pax extended headers), browser-safe; the reader is in
 * tar-reader.ts. The CLI archives directories with node-tar; this writes archives node-tar
 * extracts. Memory use is one 512-byte block plus whatever piece the source yields: file bodies
 * are streamed, never held whole.
 */
import { BkvError } from '../../shared/errors.js';

const BLOCK = 512;
const te = new TextEncoder();

export interface TarFileInput {
  /** Relative path with `/` separators, e.g. `photos/2026/a.jpg`. */
  path: string;
  size: number;
  /** Modification time in milliseconds since the epoch. */
  mtimeMs?: number;
  /** The file's bytes; must yield exactly `size` bytes. */
  open(): AsyncIterable<Uint8Array>;
}

/** Checks and normalises an archive path: relative, no `..`, no empty parts. */
export function safeTarPath(path: string): string {
  const parts = path.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.some((p) => p === '..') || path.startsWith('/')) {
    throw new BkvError('USAGE', `unsafe path in archive: ${JSON.stringify(path)}`);
  }
  return parts.join('/');
}

function octal(out: Uint8Array, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, '0');
  if (s.length > len - 1) throw new RangeError(`tar field too small for ${value}`);
  out.set(te.encode(s), off);
  out[off + len - 1] = 0;
}

function paxRecord(key: string, value: string): Uint8Array {
  const body = ` ${key}=${value}\n`;
  const bodyLen = te.encode(body).length;
  let n = bodyLen + 1;
  while (String(n).length + bodyLen !== n) n = String(n).length + bodyLen;
  return te.encode(`${n}${body}`);
}

function header(name: string, size: number, mtime: number, type: string, mode: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const nameBytes = te.encode(name);
  h.set(nameBytes.subarray(0, 100), 0);
  octal(h, 100, 8, mode);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, mtime);
  h.fill(0x20, 148, 156); // checksum computed with spaces here
  h[156] = type.charCodeAt(0);
  h.set(te.encode('ustar\u000000'), 257);
  let sum = 0;
  for (const b of h) sum += b;
  const cs = sum.toString(8).padStart(6, '0');
  h.set(te.encode(cs), 148);
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

/** The header block(s) for one entry: a pax header first when the name or size does not fit ustar. */
function entryHeaders(path: string, size: number, mtimeMs: number, type: '0' | '5'): Uint8Array[] {
  const mtime = Math.max(0, Math.floor(mtimeMs / 1000));
  const nameBytes = te.encode(path);
  const bigSize = size > 0o77777777777;
  const out: Uint8Array[] = [];
  if (nameBytes.length > 100 || bigSize || /[^\x20-\x7e]/.test(path)) {
    const records = [paxRecord('path', path), ...(bigSize ? [paxRecord('size', String(size))] : [])];
    const body = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
    let o = 0;
    for (const r of records) {
      body.set(r, o);
      o += r.length;
    }
    out.push(header(`PaxHeader/${path.replace(/[^\x20-\x7e]/g, '_')}`.slice(0, 99), body.length, mtime, 'x', 0o644), ...padded(body));
  }
  const ascii = path.replace(/[^\x20-\x7e]/g, '_');
  out.push(header(te.encode(ascii).length > 100 ? ascii.slice(-100) : ascii, bigSize ? 0 : size, mtime, type, type === '5' ? 0o755 : 0o644));
  return out;
}

function padded(body: Uint8Array): Uint8Array[] {
  const rem = body.length % BLOCK;
  return rem === 0 ? [body] : [body, new Uint8Array(BLOCK - rem)];
}

/**
 * Writes a tar archive of `files` (and a directory entry for each parent directory), streaming
 * each file's bytes. Throws IO when a file yields more or fewer bytes than its size.
 */
export async function* writeTar(files: readonly TarFileInput[]): AsyncGenerator<Uint8Array, void, undefined> {
  const dirs = new Set<string>();
  for (const f of files) {
    const path = safeTarPath(f.path);
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        yield* entryHeaders(`${d}/`, 0, f.mtimeMs ?? 0, '5');
      }
    }
    yield* entryHeaders(path, f.size, f.mtimeMs ?? 0, '0');
    let n = 0;
    for await (const piece of f.open()) {
      n += piece.length;
      if (n > f.size) throw new BkvError('IO', `${path} grew while it was being read`);
      yield piece;
    }
    if (n !== f.size) throw new BkvError('IO', `${path} changed size while it was being read`);
    const rem = f.size % BLOCK;
    if (rem !== 0) yield new Uint8Array(BLOCK - rem);
  }
  yield new Uint8Array(BLOCK * 2);
}

export { readTar, type TarEntry } from './tar-reader.js';
