/**
 * The in-memory engine: deterministic (no clock, no randomness), used by the simulator and in
 * tests, with a fault-injection API that plays the hostile or broken host: roll the store back,
 * swap or forge values, delete rows, tear an apply, corrupt a node.
 */
import { BkvError } from '../../shared/errors.js';
import {
  EMPTY_CHILD,
  RootBuilder,
  TreeUpdater,
  alignedKeyBlocks,
  childHash,
  compareKeys,
  deleteBlocks,
  emptyHash,
  keyBit,
  positionId,
  type KeyBlock,
  type NodeReader,
  valueHash,
  type TreeChild,
  type TreeNode,
} from '../../shared/record-tree/index.js';
import {
  checkIndex,
  checkKeys,
  checkPageSize,
  checkRange,
  checkWrites,
  conflict,
  copyMeta,
  hexOf,
  provenRead,
  rootMismatch,
  sameBytes,
} from './common.js';
import type { ProvenRead, RecordStore, StoreMeta, StoredRecord } from './types.js';

interface State {
  records: Map<string, StoredRecord>;
  nodes: Map<string, TreeNode>;
  meta: StoreMeta;
  rootChild: TreeChild;
}

/** An opaque copy of the whole store, for `rollbackTo`. */
export interface MemorySnapshot {
  readonly state: Readonly<State>;
}

function fresh(): State {
  return { records: new Map(), nodes: new Map(), meta: { index: 0, root: emptyHash(), count: 0 }, rootChild: EMPTY_CHILD };
}

function copyState(s: State): State {
  // Stored objects are never mutated in place (updates replace them), so a shallow copy is a snapshot.
  return { records: new Map(s.records), nodes: new Map(s.nodes), meta: copyMeta(s.meta), rootChild: s.rootChild };
}

/** Adds the position ids of every internal node at or below block `b` (read from the tree). */
function subtreeNodes(root: TreeChild, read: NodeReader, b: KeyBlock, out: string[]): void {
  let c = root;
  for (let d = 0; d < b.depth; d++) {
    if (c.kind !== 'node') return;
    const n = read(d, b.key);
    if (!n) return;
    c = keyBit(b.key, d) === 0 ? n.left : n.right;
  }
  if (c.kind !== 'node') return;
  const stack: Array<{ depth: number; key: Uint8Array }> = [{ depth: b.depth, key: b.key }];
  while (stack.length) {
    const { depth, key } = stack.pop()!;
    const n = read(depth, key);
    if (!n) continue;
    out.push(positionId(depth, key));
    if (n.left.kind === 'node') stack.push({ depth: depth + 1, key });
    if (n.right.kind === 'node') {
      const k = key.slice();
      k[depth >> 3]! |= 0x80 >> (depth & 7);
      stack.push({ depth: depth + 1, key: k });
    }
  }
}

export class MemoryRecordStore implements RecordStore {
  readonly engine = 'memory' as const;
  private s: State = fresh();
  private closed = false;
  private failNext: 'after-records' | 'after-nodes' | null = null;
  /**
   * The record ids in key order (lowercase hex of equal length sorts as the bytes do), the memory
   * engine's stand-in for a key index: built on the first `listKeys` after a change, then searched.
   */
  private sorted: { of: Map<string, StoredRecord>; keys: string[] } | null = null;
  /** Set by every change to the set of keys of the current map. */
  private dirtyKeys = false;

  private live(): void {
    if (this.closed) throw new BkvError('USAGE', 'record store is closed');
  }

  private read0 = (s: State) => (d: number, k: Uint8Array) => s.nodes.get(positionId(d, k));

  async meta(): Promise<StoreMeta> {
    this.live();
    return copyMeta(this.s.meta);
  }

  async read(keys: Uint8Array[]): Promise<{ meta: StoreMeta; reads: ProvenRead[] }> {
    this.live();
    checkKeys(keys);
    const s = this.s;
    const reader = this.read0(s);
    const reads = keys.map((k) => {
      const v = s.records.get(hexOf(k))?.value;
      return provenRead(s.rootChild, reader, k, v === undefined ? undefined : v.slice());
    });
    return { meta: copyMeta(s.meta), reads };
  }

  /** Computes the effect of an apply without changing anything. */
  private compute(writes: StoredRecord[]): { nodes: [string, TreeNode][]; rootChild: TreeChild; rootHash: Uint8Array; inserted: number } {
    const u = new TreeUpdater(this.s.rootChild, this.read0(this.s));
    for (const w of writes) u.set(w.key, valueHash(w.value));
    const r = u.finish();
    return {
      nodes: r.changed.map((c) => [positionId(c.depth, c.key), c.node]),
      rootChild: r.root,
      rootHash: r.rootHash,
      inserted: r.inserted,
    };
  }

  async apply(index: number, writes: StoredRecord[]): Promise<StoreMeta> {
    this.live();
    checkIndex(index);
    checkWrites(writes);
    if (index <= this.s.meta.index) throw conflict(index, this.s.meta.index);
    // All or nothing: everything is computed and staged first; the store changes only in the
    // synchronous commit below, which cannot fail halfway.
    const c = this.compute(writes);
    const records = writes.map((w) => ({ key: w.key.slice(), value: w.value.slice() }));
    if (this.failNext === 'after-records') {
      this.failNext = null;
      throw new BkvError('IO', 'memory record store: injected failure after the records were written');
    }
    if (this.failNext === 'after-nodes') {
      this.failNext = null;
      throw new BkvError('IO', 'memory record store: injected failure after the nodes were written');
    }
    const s = this.s;
    for (const r of records) s.records.set(hexOf(r.key), r);
    this.dirtyKeys = true;
    for (const [id, n] of c.nodes) s.nodes.set(id, n);
    s.meta = { index, root: c.rootHash, count: s.meta.count + c.inserted };
    s.rootChild = c.rootChild;
    return copyMeta(s.meta);
  }

  async deleteRange(index: number, from: Uint8Array, to: Uint8Array | null): Promise<StoreMeta> {
    this.live();
    checkIndex(index);
    checkRange(from, to, 1);
    const s = this.s;
    if (index <= s.meta.index) throw conflict(index, s.meta.index);
    // Computed and staged first; the store changes only in the synchronous commit below.
    const blocks = alignedKeyBlocks(from, to);
    const read = this.read0(s);
    const r = deleteBlocks(s.rootChild, read, blocks);
    const goneNodes: string[] = [];
    for (const b of blocks) subtreeNodes(s.rootChild, read, b, goneNodes);
    for (const x of r.removed) goneNodes.push(positionId(x.depth, x.key));
    const goneRecords = this.rangeKeys(from, to, Number.MAX_SAFE_INTEGER);
    if (this.failNext) {
      this.failNext = null;
      throw new BkvError('IO', 'memory record store: injected failure in a range deletion');
    }
    for (const h of goneRecords) s.records.delete(h);
    for (const id of goneNodes) s.nodes.delete(id);
    for (const c of r.changed) s.nodes.set(positionId(c.depth, c.key), c.node);
    s.meta = { index, root: r.rootHash, count: s.meta.count - goneRecords.length };
    s.rootChild = r.root;
    this.dirtyKeys = true;
    return copyMeta(s.meta);
  }

  async listKeys(from: Uint8Array, to: Uint8Array | null, limit: number): Promise<Uint8Array[]> {
    this.live();
    checkRange(from, to, limit);
    return this.rangeKeys(from, to, limit).map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
  }

  /** The stored ids (hex) in [from, to), at most `limit`, by binary search of the sorted ids. */
  private rangeKeys(from: Uint8Array, to: Uint8Array | null, limit: number): string[] {
    const keys = this.sortedKeys();
    const lo = hexOf(from);
    const hi = to === null ? null : hexOf(to);
    let a = 0;
    let b = keys.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (keys[m]! < lo) a = m + 1;
      else b = m;
    }
    const out: string[] = [];
    for (let i = a; i < keys.length && out.length < limit; i++) {
      const h = keys[i]!;
      if (hi !== null && h >= hi) break;
      out.push(h);
    }
    return out;
  }

  private sortedKeys(): string[] {
    const recs = this.s.records;
    // A replace or a rollback swaps the map; everything else that adds or removes keys sets dirtyKeys.
    if (!this.sorted || this.sorted.of !== recs || this.dirtyKeys) {
      this.sorted = { of: recs, keys: [...recs.keys()].sort() };
      this.dirtyKeys = false;
    }
    return this.sorted.keys;
  }

  async export(pageSize?: number): Promise<{ meta: StoreMeta; pages: AsyncIterable<StoredRecord[]> }> {
    this.live();
    const size = checkPageSize(pageSize);
    const snap = this.s;
    const sorted = [...snap.records.values()].sort((a, b) => compareKeys(a.key, b.key));
    async function* pages(): AsyncIterable<StoredRecord[]> {
      for (let i = 0; i < sorted.length; i += size) {
        yield sorted.slice(i, i + size).map((r) => ({ key: r.key.slice(), value: r.value.slice() }));
      }
    }
    return { meta: copyMeta(snap.meta), pages: pages() };
  }

  async replace(
    expect: { index: number; root: Uint8Array },
    pages: AsyncIterable<StoredRecord[]>,
    onProgress?: (n: number) => void,
  ): Promise<StoreMeta> {
    this.live();
    checkIndex(expect.index);
    const next = fresh();
    const b = new RootBuilder((d, k, n) => next.nodes.set(positionId(d, k), n));
    let n = 0;
    for await (const page of pages) {
      checkWrites(page);
      for (const r of page) {
        b.add(r.key, valueHash(r.value));
        next.records.set(hexOf(r.key), { key: r.key.slice(), value: r.value.slice() });
      }
      n += page.length;
      onProgress?.(n);
    }
    const top = b.finishChild();
    const root = childHash(top);
    if (!sameBytes(root, expect.root)) throw rootMismatch(expect.root, root, n);
    next.rootChild = top;
    next.meta = { index: expect.index, root, count: n };
    this.live();
    this.s = next;
    return copyMeta(next.meta);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- fault injection: what a hostile or broken host can do to its store ----

  /** A copy of the whole store as it is now. */
  snapshot(): MemorySnapshot {
    return { state: copyState(this.s) };
  }

  /** Restores an older copy of the whole store (a rollback). */
  rollbackTo(snap: MemorySnapshot): void {
    this.s = copyState(snap.state as State);
  }

  /** Swaps the stored values of two records (tree untouched). */
  swapValues(k1: Uint8Array, k2: Uint8Array): void {
    const a = this.s.records.get(hexOf(k1));
    const b = this.s.records.get(hexOf(k2));
    if (!a || !b) throw new BkvError('USAGE', 'swapValues: both records must exist');
    this.s.records.set(hexOf(k1), { key: a.key, value: b.value });
    this.s.records.set(hexOf(k2), { key: b.key, value: a.value });
  }

  /** Deletes a record's row (tree untouched). */
  deleteRow(k: Uint8Array): void {
    this.s.records.delete(hexOf(k));
    this.dirtyKeys = true;
  }

  /** Overwrites a record's stored value (tree untouched). */
  forgeValue(k: Uint8Array, bytes: Uint8Array): void {
    this.s.records.set(hexOf(k), { key: k.slice(), value: bytes.slice() });
    this.dirtyKeys = true;
  }

  /**
   * Half an apply: `'records'` writes the records but neither the nodes nor the meta; `'tree'`
   * writes the nodes and the meta but not the records.
   */
  tornApply(index: number, writes: StoredRecord[], part: 'records' | 'tree' = 'records'): void {
    checkWrites(writes);
    if (part === 'records') {
      for (const w of writes) this.s.records.set(hexOf(w.key), { key: w.key.slice(), value: w.value.slice() });
      this.dirtyKeys = true;
      return;
    }
    const c = this.compute(writes);
    for (const [id, n] of c.nodes) this.s.nodes.set(id, n);
    this.s.meta = { index, root: c.rootHash, count: this.s.meta.count + c.inserted };
    this.s.rootChild = c.rootChild;
  }

  /** Flips a bit in the stored hash of one child of the internal node at `depth` on `key`'s path. */
  corruptNode(depth: number, key: Uint8Array, side: 'left' | 'right'): void {
    const id = positionId(depth, key);
    const n = this.s.nodes.get(id);
    if (!n) throw new BkvError('USAGE', 'corruptNode: no such node');
    const c = n[side];
    const flip = (b: Uint8Array): Uint8Array => {
      const x = b.slice();
      x[x.length - 1]! ^= 1;
      return x;
    };
    const bad: TreeChild =
      c.kind === 'node' ? { kind: 'node', hash: flip(c.hash) } : c.kind === 'leaf' ? { ...c, valueHash: flip(c.valueHash) } : { kind: 'node', hash: flip(emptyHash()) };
    this.s.nodes.set(id, { ...n, [side]: bad });
  }

  /** The next apply fails after writing the records, or after the nodes (for atomicity tests). */
  failNextApply(at: 'after-records' | 'after-nodes'): void {
    this.failNext = at;
  }
}
