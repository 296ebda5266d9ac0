/**
 * The record store: the host's untrusted database of sealed vault records and of the record
 * tree's nodes (docs/record-store.md). Whatever it returns, the core checks against the root it
 * holds (docs/formats/record-tree.md); the store is trusted for availability only.
 */
export type RecordStoreEngine = 'memory' | 'sqlite' | 'postgres';

/** A new store: index 0, 32 zero bytes, count 0. */
export interface StoreMeta {
  index: number;
  root: Uint8Array;
  count: number;
}

export interface StoredRecord {
  key: Uint8Array;
  value: Uint8Array;
}

export interface ProvenRead {
  key: Uint8Array;
  value: Uint8Array | null;
  /** The encoded record-tree proof for `key` against the snapshot's `meta.root`. */
  proof: Uint8Array;
}

export interface RecordStore {
  readonly engine: RecordStoreEngine;
  meta(): Promise<StoreMeta>;
  /** One consistent snapshot: the meta and, for each key, its value (or null) with a proof against meta.root. */
  read(keys: Uint8Array[]): Promise<{ meta: StoreMeta; reads: ProvenRead[] }>;
  /**
   * Atomically (one transaction): upsert the records, update the tree nodes, set meta to
   * (index, new root). `index` must be > meta.index, else BkvError('CONFLICT'). Writes are applied
   * in order (the same key twice: the later value wins). Returns the new meta (root computed by
   * the host).
   */
  apply(index: number, writes: StoredRecord[]): Promise<StoreMeta>;
  /**
   * Atomically (one transaction): deletes the records k with from <= k < to (`to` null: up to the
   * end of the key space) and every tree node that goes with them (the tree stays compacted: see
   * docs/formats/record-tree.md, "Deleting ranges"), and sets meta to (index, new root, count −
   * records deleted). `index` must be > meta.index, else BkvError('CONFLICT') and nothing changes.
   */
  deleteRange(index: number, from: Uint8Array, to: Uint8Array | null): Promise<StoreMeta>;
  /**
   * The ids of the stored records k with from <= k < to (`to` null: up to the end of the key
   * space), in increasing key order, at most `limit` of them: one range query over the records'
   * key index, never a scan of the whole store. `limit` is a positive safe integer.
   */
  listKeys(from: Uint8Array, to: Uint8Array | null, limit: number): Promise<Uint8Array[]>;
  /**
   * A consistent export of the whole store in key order, in pages, from one read snapshot. The
   * snapshot is released when the pages have been read to the end or the loop over them is left;
   * `close()` releases any still open.
   */
  export(pageSize?: number): Promise<{ meta: StoreMeta; pages: AsyncIterable<StoredRecord[]> }>;
  /**
   * Replaces the whole content with records in strictly increasing key order. Built aside and
   * swapped in atomically only if the root computed while loading equals `expect.root` (else
   * nothing changes and BkvError('VERIFICATION_FAILED') is thrown). Streams in bounded memory.
   */
  replace(
    expect: { index: number; root: Uint8Array },
    pages: AsyncIterable<StoredRecord[]>,
    onProgress?: (n: number) => void,
  ): Promise<StoreMeta>;
  close(): Promise<void>;
}

export interface OpenRecordStoreOptions {
  /** PostgreSQL: the schema holding this store's tables (also `?schema=` in the URL). Default `public`. */
  schema?: string;
  /** PostgreSQL: connections in the pool (default 4). */
  poolSize?: number;
  /** SQLite: page cache in MiB (default 32). */
  cacheMiB?: number;
  /**
   * SQLite: tree nodes kept in the host's memory cache (default 65,536, about 12 MiB of heap; 0 turns it
   * off). Bounded whatever the number of records.
   */
  nodeCacheEntries?: number;
  /** SQLite: how often the background thread checkpoints the WAL, in ms (default 2,000). */
  checkpointEveryMs?: number;
}
