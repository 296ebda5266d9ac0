/**
 * A store export on the wire (member API `GET /v1/store/export`, docs/api.md): how a member that
 * must repair its record store streams a peer's. Untrusted bytes: the receiving member's core checks
 * the whole stream against a root it committed, so the framing only has to be strict, not secret.
 *
 *   header  "BKVX" ‖ u8 version 1 ‖ u64 batch index ‖ root (32) ‖ u64 record count
 *   record  u8 1 ‖ record id (32) ‖ u32 length ‖ value      (ids strictly increasing)
 *   end     u8 2 ‖ u64 number of records sent
 */
import { BkvError } from '../../shared/errors.js';
import type { StoreMeta, StoredRecord } from './types.js';

const MAGIC = [0x42, 0x4b, 0x56, 0x58];
const VERSION = 1;
const HEADER = 4 + 1 + 8 + 32 + 8;
const MAX_VALUE = 4096;

function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, Math.floor(v / 2 ** 32));
  dv.setUint32(4, v >>> 0);
  return b;
}

export function encodeExportHeader(meta: StoreMeta): Uint8Array {
  const out = new Uint8Array(HEADER);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out.set(u64(meta.index), 5);
  out.set(meta.root, 13);
  out.set(u64(meta.count), 45);
  return out;
}

export function encodeExportPage(records: StoredRecord[]): Uint8Array {
  let size = 0;
  for (const r of records) size += 1 + 32 + 4 + r.value.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let p = 0;
  for (const r of records) {
    out[p++] = 1;
    out.set(r.key, p);
    p += 32;
    dv.setUint32(p, r.value.length);
    p += 4;
    out.set(r.value, p);
    p += r.value.length;
  }
  return out;
}

export function encodeExportEnd(sent: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = 2;
  out.set(u64(sent), 1);
  return out;
}

/** The whole export as chunks of bytes, from a store's consistent export. */
export async function* exportChunks(exp: { meta: StoreMeta; pages: AsyncIterable<StoredRecord[]> }): AsyncGenerator<Uint8Array> {
  yield encodeExportHeader(exp.meta);
  let sent = 0;
  for await (const page of exp.pages) {
    sent += page.length;
    yield encodeExportPage(page);
  }
  yield encodeExportEnd(sent);
}

function bad(message: string): BkvError {
  return new BkvError('MALFORMED', `store export: ${message}`);
}

/**
 * Parses an export from a byte stream: resolves the header first, then yields pages of records.
 * Memory is bounded by one page plus one chunk of input.
 */
export async function parseExport(chunks: AsyncIterable<Uint8Array>, pageSize = 1024): Promise<{ meta: StoreMeta; pages: AsyncIterable<StoredRecord[]> }> {
  const it = chunks[Symbol.asyncIterator]();
  let buf = new Uint8Array(0);
  let done = false;
  const fill = async (n: number): Promise<boolean> => {
    while (buf.length < n && !done) {
      const r = await it.next();
      if (r.done) {
        done = true;
        break;
      }
      const next = new Uint8Array(buf.length + r.value.length);
      next.set(buf);
      next.set(r.value, buf.length);
      buf = next;
    }
    return buf.length >= n;
  };
  const take = (n: number): Uint8Array => {
    const out = buf.slice(0, n);
    buf = buf.subarray(n);
    return out;
  };
  const readU64 = (b: Uint8Array, at: number) => {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return dv.getUint32(at) * 2 ** 32 + dv.getUint32(at + 4);
  };
  if (!(await fill(HEADER))) throw bad('too short for its header');
  const h = take(HEADER);
  if (!MAGIC.every((m, i) => h[i] === m)) throw bad('not a store export');
  if (h[4] !== VERSION) throw bad(`version ${h[4]} is not supported`);
  const meta: StoreMeta = { index: readU64(h, 5), root: h.slice(13, 45), count: readU64(h, 45) };

  async function* pages(): AsyncGenerator<StoredRecord[]> {
    let page: StoredRecord[] = [];
    let sent = 0;
    for (;;) {
      if (!(await fill(1))) throw bad('ends without its end marker');
      const type = take(1)[0];
      if (type === 2) {
        if (!(await fill(8))) throw bad('end marker is truncated');
        const n = readU64(take(8), 0);
        if (n !== sent) throw bad(`end marker counts ${n} records, ${sent} arrived`);
        if (buf.length > 0 || !(await it.next()).done) throw bad('has bytes after its end marker');
        if (page.length > 0) yield page;
        return;
      }
      if (type !== 1) throw bad(`unknown frame type ${type}`);
      if (!(await fill(36))) throw bad('record is truncated');
      const head = take(36);
      const len = new DataView(head.buffer, head.byteOffset).getUint32(32);
      if (len > MAX_VALUE) throw bad(`record of ${len} bytes (limit ${MAX_VALUE})`);
      if (!(await fill(len))) throw bad('record value is truncated');
      page.push({ key: head.slice(0, 32), value: take(len) });
      sent++;
      if (page.length >= pageSize) {
        yield page;
        page = [];
      }
    }
  }
  return { meta, pages: pages() };
}
