/**
 * Ranges of the record-id space. A record id is a 32-byte key read as a 256-bit big-endian number;
 * a range is half-open, `[start, end)`, with bounds on slot boundaries (a slot is 2^224 ids: the
 * first 4 bytes of an id name its slot), so a range is a pair of slot numbers 0 ≤ s < e ≤ 2^32.
 * Design: docs/groups.md; bytes: docs/formats/groups.md.
 */
import { BkvError } from '../../shared/errors.js';
import type { Reader, Writer } from '../core/codec.js';

export const SLOT_BITS = 32;
export const SLOTS = 2 ** SLOT_BITS;
/** Most groups a fleet may have. */
export const MAX_GROUPS = 64;

export interface KeyRange {
  /** First slot of the range. */
  start: number;
  /** Slot after the last one (SLOTS for the end of the space). */
  end: number;
}

export const FULL_RANGE: KeyRange = Object.freeze({ start: 0, end: SLOTS });
export const EMPTY_RANGE: KeyRange = Object.freeze({ start: 0, end: 0 });

/** The slot of a 32-byte record id. */
export function slotOf(id: Uint8Array): number {
  return ((id[0]! << 24) >>> 0) + (id[1]! << 16) + (id[2]! << 8) + id[3]!;
}

export function isEmpty(r: KeyRange): boolean {
  return r.end <= r.start;
}

export function containsId(r: KeyRange, id: Uint8Array): boolean {
  const s = slotOf(id);
  return s >= r.start && s < r.end;
}

export function containsRange(outer: KeyRange, inner: KeyRange): boolean {
  return !isEmpty(inner) && inner.start >= outer.start && inner.end <= outer.end;
}

export function overlaps(a: KeyRange, b: KeyRange): boolean {
  return !isEmpty(a) && !isEmpty(b) && a.start < b.end && b.start < a.end;
}

export function sameRange(a: KeyRange, b: KeyRange): boolean {
  return a.start === b.start && a.end === b.end;
}

/** `owned` minus `part`, which must be a prefix, a suffix or all of it (the rest stays contiguous). */
export function removeEnd(owned: KeyRange, part: KeyRange): KeyRange | null {
  if (!containsRange(owned, part)) return null;
  if (sameRange(owned, part)) return EMPTY_RANGE;
  if (part.start === owned.start) return { start: part.end, end: owned.end };
  if (part.end === owned.end) return { start: owned.start, end: part.start };
  return null;
}

/** `owned` joined with `part`, which must touch it (or `owned` is empty); null otherwise. */
export function join(owned: KeyRange, part: KeyRange): KeyRange | null {
  if (isEmpty(part)) return null;
  if (isEmpty(owned)) return { start: part.start, end: part.end };
  if (part.end === owned.start) return { start: part.start, end: owned.end };
  if (part.start === owned.end) return { start: owned.start, end: part.end };
  return null;
}

/** Group `i` of `n` at genesis: an even split of the slots; groups numbered `n` and above start empty. */
export function genesisRange(i: number, n: number): KeyRange {
  if (!Number.isInteger(n) || n < 1 || n > MAX_GROUPS) throw new BkvError('USAGE', `a fleet has 1 to ${MAX_GROUPS} groups, not ${n}`);
  if (!Number.isInteger(i) || i < 0 || i >= MAX_GROUPS) throw new BkvError('USAGE', `group id ${i} is out of range`);
  if (i >= n) return EMPTY_RANGE;
  return { start: Math.floor((i * SLOTS) / n), end: Math.floor(((i + 1) * SLOTS) / n) };
}

/**
 * The maximal aligned blocks of a range, in order: each is `2^k` slots starting at a multiple of
 * `2^k`, as the id prefix of its first `depth = 32 - k` bits. At most 62 blocks.
 */
export function alignedBlocks(r: KeyRange): Array<{ slot: number; depth: number }> {
  const out: Array<{ slot: number; depth: number }> = [];
  let s = r.start;
  while (s < r.end) {
    let k = SLOT_BITS;
    while (k > 0 && (s % 2 ** k !== 0 || s + 2 ** k > r.end)) k--;
    out.push({ slot: s, depth: SLOT_BITS - k });
    s += 2 ** k;
  }
  return out;
}

/** The first id of a slot: its 4 bytes, then zeros. */
export function slotFirstId(slot: number): Uint8Array {
  const id = new Uint8Array(32);
  id[0] = (slot >>> 24) & 255;
  id[1] = (slot >>> 16) & 255;
  id[2] = (slot >>> 8) & 255;
  id[3] = slot & 255;
  return id;
}

export function checkRange(r: KeyRange, what = 'range'): void {
  if (!Number.isInteger(r.start) || !Number.isInteger(r.end) || r.start < 0 || r.end > SLOTS || r.start >= r.end) {
    throw new BkvError('MALFORMED', `${what} [${r.start}, ${r.end}) is not a range of slots`);
  }
}

/** 2 × u64: start slot, end slot (the end may be 2^32). */
export function writeRange(w: Writer, r: KeyRange): Writer {
  return w.u64(r.start).u64(r.end);
}

/** Reads a range; `allowEmpty` accepts [0, 0) (an empty group). */
export function readRange(r: Reader, allowEmpty = false): KeyRange {
  const out = { start: r.u64(), end: r.u64() };
  if (allowEmpty && out.start === 0 && out.end === 0) return EMPTY_RANGE;
  checkRange(out);
  return out;
}

export function formatRange(r: KeyRange): string {
  return isEmpty(r) ? '[empty]' : `[${r.start.toString(16).padStart(8, '0')}, ${r.end.toString(16).padStart(9, '0')})`;
}
