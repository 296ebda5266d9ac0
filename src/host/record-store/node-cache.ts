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

const idKey = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1');

export class NodeCache {
  private readonly rows = new Map<string, NodeRow>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.rows.size;
  }

  get(id: Uint8Array): NodeRow | undefined {
    if (this.capacity === 0) return undefined;
    const k = idKey(id);
    const row = this.rows.get(k);
    if (row !== undefined) {
      // Most recently used last.
      this.rows.delete(k);
      this.rows.set(k, row);
    }
    return row;
  }

  set(id: Uint8Array, row: NodeRow): void {
    if (this.capacity === 0) return;
    const k = idKey(id);
    this.rows.delete(k);
    this.rows.set(k, { l: row.l.slice(), r: row.r.slice() });
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
