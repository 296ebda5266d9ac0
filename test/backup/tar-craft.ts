/**
 * Raw tar archives for tests, as a hostile archiver would write them: any name, type and link
 * target, in any order, with the name in the ustar header, the ustar prefix field, a pax header
 * or a GNU long-name entry.
 */
const BLOCK = 512;
const te = new TextEncoder();

export interface RawEntry {
  name: string;
  /** Type flag: '0' file, '5' directory, '2' symlink, '1' hard link, '6' FIFO, ... */
  type: string;
  data?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  /** Where the name goes: the 100-byte field (default), the ustar prefix, a pax or GNU header. */
  via?: 'ustar' | 'prefix' | 'pax' | 'gnu';
}

function octal(h: Uint8Array, off: number, len: number, value: number): void {
  h.set(te.encode(value.toString(8).padStart(len - 1, '0')), off);
}

function header(name: string, type: string, size: number, o: { linkname?: string; mode?: number; prefix?: string; gnu?: boolean } = {}): Uint8Array {
  const h = new Uint8Array(BLOCK);
  h.set(te.encode(name).subarray(0, 100), 0);
  octal(h, 100, 8, o.mode ?? (type === '5' ? 0o755 : 0o644));
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, 1_700_000_000);
  h[156] = type.charCodeAt(0);
  if (o.linkname) h.set(te.encode(o.linkname).subarray(0, 100), 157);
  h.set(te.encode(o.gnu ? 'ustar  \0' : 'ustar\u000000'), 257);
  if (o.prefix) h.set(te.encode(o.prefix), 345);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(te.encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
  return h;
}

function padded(body: Uint8Array): Uint8Array[] {
  const rem = body.length % BLOCK;
  return rem === 0 ? [body] : [body, new Uint8Array(BLOCK - rem)];
}

function pax(records: Record<string, string>): Uint8Array {
  let out = '';
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let n = te.encode(body).length + 1;
    while (String(n).length + te.encode(body).length !== n) n = String(n).length + te.encode(body).length;
    out += `${n}${body}`;
  }
  return te.encode(out);
}

/** The archive's bytes: the entries, then the two end-of-archive blocks (unless `noEnd`). */
export function craftTar(entries: RawEntry[], o: { noEnd?: boolean; after?: Uint8Array } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = typeof e.data === 'string' ? te.encode(e.data) : (e.data ?? new Uint8Array(0));
    const link = e.linkname !== undefined ? { linkname: e.linkname } : {};
    const mode = e.mode !== undefined ? { mode: e.mode } : {};
    let name = e.name;
    if (e.via === 'pax') {
      const body = pax({ path: e.name, ...(e.linkname ? { linkpath: e.linkname } : {}) });
      parts.push(header('PaxHeader/x', 'x', body.length), ...padded(body));
      name = 'placeholder';
    } else if (e.via === 'gnu') {
      const body = te.encode(e.name + '\0');
      parts.push(header('././@LongLink', 'L', body.length, { gnu: true }), ...padded(body));
      name = 'placeholder';
    }
    if (e.via === 'prefix') {
      const cut = e.name.lastIndexOf('/');
      parts.push(header(e.name.slice(cut + 1), e.type, data.length, { ...link, ...mode, prefix: e.name.slice(0, cut) }));
    } else {
      parts.push(header(name, e.type, data.length, { ...link, ...mode, gnu: e.via === 'gnu' }));
    }
    if (data.length > 0) parts.push(...padded(data));
  }
  if (!o.noEnd) parts.push(new Uint8Array(2 * BLOCK));
  if (o.after) parts.push(o.after);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
