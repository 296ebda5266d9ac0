/**
 * C2SP tlog-tiles path and tile math. Browser-safe.
 *
 * Tiles are 256 hashes wide (height 8). The tile at level L, index N holds the hashes of tree
 * level 8·L at positions 256·N … 256·N+W−1. A partial tile (W < 256) is named `.p/W`.
 * Indices are written in groups of three digits, every group but the last prefixed with `x`.
 */
export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;

/** Encodes a tile index N as `x001/x234/067` (tlog-tiles). */
export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('tile index must be a non-negative integer');
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? 'x' + g : g)).join('/');
}

/** Parses the index path segments back; returns undefined on anything non-canonical. */
export function decodeTileIndex(segments: readonly string[]): number | undefined {
  if (segments.length === 0) return undefined;
  let n = 0;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    const m = last ? /^([0-9]{3})$/.exec(seg) : /^x([0-9]{3})$/.exec(seg);
    if (!m) return undefined;
    n = n * 1000 + Number(m[1]);
    if (!Number.isSafeInteger(n)) return undefined;
  }
  // the first group may only be zero when it is the only group
  if (segments.length > 1 && segments[0] === 'x000') return undefined;
  return n;
}

export function tilePath(level: number, index: number, width: number = TILE_WIDTH): string {
  const base = `tile/${level}/${encodeTileIndex(index)}`;
  return width === TILE_WIDTH ? base : `${base}.p/${width}`;
}

export function entriesPath(index: number, width: number = TILE_WIDTH): string {
  const base = `tile/entries/${encodeTileIndex(index)}`;
  return width === TILE_WIDTH ? base : `${base}.p/${width}`;
}

/** Encodes an entry bundle: each entry as a big-endian uint16 length and its bytes. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const e of entries) {
    if (e.length > 0xffff) throw new RangeError('entry too large for an entry bundle');
    total += 2 + e.length;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const e of entries) {
    out[off] = e.length >> 8;
    out[off + 1] = e.length & 0xff;
    out.set(e, off + 2);
    off += 2 + e.length;
  }
  return out;
}

export function decodeEntryBundle(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < bytes.length) {
    if (off + 2 > bytes.length) throw new RangeError('truncated entry bundle');
    const len = (bytes[off]! << 8) | bytes[off + 1]!;
    if (off + 2 + len > bytes.length) throw new RangeError('truncated entry bundle');
    out.push(bytes.slice(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return out;
}
