/**
 * A bounded, least-recently-used cache of stored tree nodes (id → the two stored children), kept
 * by an engine in host memory so that the nodes of a path it has just read or written are not
 * fetched again for the next batch on the same path, and the hot upper levels of a large tree stay
 * in memory. It is host state: it holds nothing the core trusts (every node still reaches the core
 * inside a proof it checks), it is bounded whatever the number of records, and the engine drops it
 * whenever the database may have changed under it (another connection's commit, a replace).
 */
import { decodeChild, type TreeNode } from './common.js';

/** Stored children of one node as the engine read or wrote them (bytes as in the `nodes` table). */
export interface NodeRow {
  l: Uint8Array;
  r: Uint8Array;
}

export const DEFAULT_NODE_CACHE_ENTRIES = 65_536;

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/**
 * Entries are kept as strings (one byte per character, on the V8 heap): the id, and the row as
 * one byte for the left child's length followed by both children. Small typed arrays would each
 * cost an allocation of their own outside the heap, several times their size.
 */
export class NodeCache {
  private readonly rows = new Map<string, string>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.rows.size;
  }

  get(id: Uint8Array): NodeRow | undefined {
    if (this.capacity === 0) return undefined;
    const k = latin1(id);
    const packed = this.rows.get(k);
    if (packed === undefined) return undefined;
    // Most recently used last.
    this.rows.delete(k);
    this.rows.set(k, packed);
    const b = Buffer.from(packed, 'latin1');
    const split = 1 + (b[0] as number);
    return { l: b.subarray(1, split), r: b.subarray(split) };
  }

  set(id: Uint8Array, row: NodeRow): void {
    if (this.capacity === 0) return;
    const k = latin1(id);
    const b = Buffer.allocUnsafe(1 + row.l.length + row.r.length);
    b[0] = row.l.length;
    b.set(row.l, 1);
    b.set(row.r, 1 + row.l.length);
    this.rows.delete(k);
    this.rows.set(k, b.toString('latin1'));
    if (this.rows.size > this.capacity) {
      const oldest = this.rows.keys().next().value as string;
      this.rows.delete(oldest);
    }
  }

  clear(): void {
    this.rows.clear();
  }

  /** The node a row stands for (decoding checks each child's length). */
  static node(row: NodeRow): TreeNode {
    return { left: decodeChild(row.l), right: decodeChild(row.r) };
  }
}
