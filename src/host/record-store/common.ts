/**
 * What the three engines share: argument checks, the stored form of tree nodes, and proving
 * and updating over whatever node lookup an engine has.
 */
import { BkvError } from '../../shared/errors.js';
import {
  EMPTY_CHILD,
  KEY_SIZE,
  HASH_SIZE,
  type NodeReader,
  type TreeChild,
  type TreeNode,
  type KeyBlock,
  encodeProof,
  lastKeyOf,
  prove,
  bytesEqual,
} from '../../shared/record-tree/index.js';
import type { ProvenRead, StoreMeta, StoredRecord } from './types.js';

export const NODE_ID_SIZE = 33;
export const DEFAULT_PAGE_SIZE = 1000;

/**
 * The stored id of the internal node at `depth` on `key`'s path: the last key of its range (the
 * first `depth` bits of `key`, then ones) followed by the byte 255 − depth. Ids sort in post-order
 * (children before parents, left before right), the order in which RootBuilder completes nodes,
 * so a bulk load appends to the index instead of inserting all over it.
 */
export function nodeId(depth: number, key: Uint8Array): Uint8Array {
  const id = new Uint8Array(NODE_ID_SIZE);
  const full = depth >> 3;
  id.set(key.subarray(0, full), 0);
  if (full < KEY_SIZE) {
    const rest = depth & 7;
    id[full] = ((key[full] as number) & (0xff00 >> rest) & 0xff) | (0xff >> rest);
    id.fill(0xff, full + 1, KEY_SIZE);
  }
  id[KEY_SIZE] = 255 - depth;
  return id;
}

/** A child as stored: 0 bytes empty, 32 bytes an internal node's hash, 64 bytes a leaf's key ‖ value hash. */
export function encodeChild(c: TreeChild): Uint8Array {
  switch (c.kind) {
    case 'empty':
      return new Uint8Array(0);
    case 'node':
      return c.hash;
    case 'leaf': {
      const b = new Uint8Array(KEY_SIZE + HASH_SIZE);
      b.set(c.key, 0);
      b.set(c.valueHash, KEY_SIZE);
      return b;
    }
  }
}

export function decodeChild(b: Uint8Array): TreeChild {
  if (b.length === 0) return EMPTY_CHILD;
  if (b.length === HASH_SIZE) return { kind: 'node', hash: b };
  if (b.length === KEY_SIZE + HASH_SIZE) return { kind: 'leaf', key: b.subarray(0, KEY_SIZE), valueHash: b.subarray(KEY_SIZE) };
  // A hostile or damaged database: report it as a node the core will not be able to verify.
  throw new BkvError('VERIFICATION_FAILED', `record store: a stored tree child has ${b.length} bytes`);
}

/**
 * The node-id interval [lo, hi] of every internal node at or below an aligned block: the block's
 * first key ‖ 0 up to its last key ‖ (255 − depth) (ids are last key ‖ 255 − depth; the block's
 * ancestors that end on the same last key have larger last bytes).
 */
export function blockNodeIds(b: KeyBlock): { lo: Uint8Array; hi: Uint8Array } {
  const lo = new Uint8Array(NODE_ID_SIZE);
  lo.set(b.key, 0);
  const hi = new Uint8Array(NODE_ID_SIZE);
  hi.set(lastKeyOf(b), 0);
  hi[KEY_SIZE] = 255 - b.depth;
  return { lo, hi };
}

/** Adapts a lookup of stored rows (l, r) by node id to the tree's reader. */
export function rowReader(get: (id: Uint8Array) => { l: Uint8Array; r: Uint8Array } | undefined): NodeReader {
  return (depth, key) => {
    const row = get(nodeId(depth, key));
    return row ? { left: decodeChild(row.l), right: decodeChild(row.r) } : undefined;
  };
}

/** Node ids on the paths of `keys` for depths 0..maxDepth−1, deduplicated. */
export function pathIds(keys: readonly Uint8Array[], maxDepth: number): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  for (const k of keys) {
    for (let d = 0; d < maxDepth; d++) {
      const id = nodeId(d, k);
      const h = hexOf(id);
      if (seen.has(h)) continue;
      seen.add(h);
      out.push(id);
    }
  }
  return out;
}

/** How deep to fetch in one go: enough for almost every path in a store of `count` random keys. */
export function guessDepth(count: number): number {
  return Math.min(256, Math.ceil(Math.log2(count + 2)) + 12);
}

export function hexOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function checkKeys(keys: readonly Uint8Array[]): void {
  if (!Array.isArray(keys)) throw new BkvError('USAGE', 'record store: keys must be an array');
  for (const k of keys) {
    if (!(k instanceof Uint8Array) || k.length !== KEY_SIZE) throw new BkvError('USAGE', `record store: a key must be ${KEY_SIZE} bytes`);
  }
}

export function checkWrites(writes: readonly StoredRecord[]): void {
  if (!Array.isArray(writes)) throw new BkvError('USAGE', 'record store: writes must be an array');
  checkKeys(writes.map((w) => w?.key));
  for (const w of writes) if (!(w.value instanceof Uint8Array)) throw new BkvError('USAGE', 'record store: a value must be bytes');
}

/** The arguments of `listKeys`: 32-byte bounds (`to` may be null) and a positive safe integer limit. */
export function checkRange(from: Uint8Array, to: Uint8Array | null, limit: number): void {
  checkKeys(to === null ? [from] : [from, to]);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new BkvError('USAGE', 'record store: limit must be a positive safe integer');
}

export function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new BkvError('USAGE', 'record store: index must be a non-negative safe integer');
}

export function conflict(index: number, current: number): BkvError {
  return new BkvError('CONFLICT', `record store: apply at index ${index} but the store is already at ${current}`, { index, current });
}

/** The last write of each key, in first-seen order. */
export function lastWrites(writes: readonly StoredRecord[]): StoredRecord[] {
  const m = new Map<string, StoredRecord>();
  for (const w of writes) {
    const h = hexOf(w.key);
    m.delete(h);
    m.set(h, w);
  }
  return [...m.values()];
}

export function provenRead(rootChild: TreeChild, read: NodeReader, key: Uint8Array, value: Uint8Array | undefined): ProvenRead {
  return { key: key.slice(), value: value === undefined ? null : value, proof: encodeProof(prove(rootChild, read, key)) };
}

export function copyMeta(m: StoreMeta): StoreMeta {
  return { index: m.index, root: m.root.slice(), count: m.count };
}

export function checkPageSize(pageSize: number | undefined): number {
  const p = pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isSafeInteger(p) || p < 1) throw new BkvError('USAGE', 'record store: page size must be a positive integer');
  return p;
}

export function rootMismatch(expected: Uint8Array, got: Uint8Array, count: number): BkvError {
  return new BkvError(
    'VERIFICATION_FAILED',
    `record store: the records loaded (${count}) have root ${hexOf(got).slice(0, 16)}…, not the expected ${hexOf(expected).slice(0, 16)}…; nothing was replaced`,
    { expected: hexOf(expected), got: hexOf(got), count },
  );
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a, b);
}

/** Plain Uint8Array copy of what a driver returned (Buffers compare unequal to Uint8Arrays in tests). */
export function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

export type { TreeNode };

/** Lets one replace run at a time per store: a second is refused with UNAVAILABLE. */
export class OneReplaceAtATime {
  private busy = false;

  async run<T>(engine: string, f: () => Promise<T>): Promise<T> {
    if (this.busy) throw new BkvError('UNAVAILABLE', `${engine} record store: another replace is in progress`);
    this.busy = true;
    try {
      return await f();
    } finally {
      this.busy = false;
    }
  }
}
