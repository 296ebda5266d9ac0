/**
 * A naive record tree for tests: rebuilds everything from the whole set of records, written
 * straight from the definition in docs/formats/record-tree.md with node:crypto's SHA-256.
 */
import { createHash } from 'node:crypto';

export const sha = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
export const Z = new Uint8Array(32);
export const refLeaf = (k: Uint8Array, vh: Uint8Array): Uint8Array => sha(Uint8Array.of(0), k, vh);
export const refNode = (l: Uint8Array, r: Uint8Array): Uint8Array => sha(Uint8Array.of(1), l, r);
export const bit = (k: Uint8Array, i: number): number => (k[i >> 3]! >> (7 - (i % 8))) & 1;
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export type Entry = { key: Uint8Array; vh: Uint8Array };

/** The set after applying `entries` in order (last value wins), sorted by key. */
export function toSet(entries: Entry[]): Entry[] {
  const m = new Map<string, Entry>();
  for (const e of entries) m.set(hex(e.key), e);
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
}

export function refHash(set: Entry[], depth = 0): Uint8Array {
  if (set.length === 0) return Z;
  if (set.length === 1) return refLeaf(set[0]!.key, set[0]!.vh);
  const l = set.filter((e) => bit(e.key, depth) === 0);
  const r = set.filter((e) => bit(e.key, depth) === 1);
  return refNode(refHash(l, depth + 1), refHash(r, depth + 1));
}

export type RefProof = {
  terminal: { kind: 'empty' } | { kind: 'leaf'; key: Uint8Array; valueHash: Uint8Array };
  siblings: Uint8Array[];
};

export function refProve(set: Entry[], key: Uint8Array): RefProof {
  const siblings: Uint8Array[] = [];
  let cur = set;
  let d = 0;
  while (cur.length > 1) {
    const b = bit(key, d);
    const on = cur.filter((e) => bit(e.key, d) === b);
    const off = cur.filter((e) => bit(e.key, d) !== b);
    siblings.push(refHash(off, d + 1));
    cur = on;
    d++;
  }
  const terminal = cur.length === 0 ? ({ kind: 'empty' } as const) : ({ kind: 'leaf', key: cur[0]!.key, valueHash: cur[0]!.vh } as const);
  return { terminal, siblings };
}
