/**
 * The SQLite engine (better-sqlite3): one file, WAL journal, synchronous=FULL, prepared
 * statements, one IMMEDIATE transaction per apply. `replace` builds a new file beside the store
 * and renames it over the old one only when its root is the expected one. Tree nodes read or
 * written are kept in a bounded host-memory cache (`node-cache.ts`), dropped whenever another
 * connection has committed to the file (SQLite's `data_version`) or the file is replaced. WAL
 * checkpoints run in a worker thread (`sqlite-checkpointer.ts`), not inside a commit.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BkvError, isBkvError } from '../../shared/errors.js';
import {
  RootBuilder,
  TreeUpdater,
  alignedKeyBlocks,
  childHash,
  deleteBlocks,
  emptyHash,
  lastKeyOf,
  valueHash,
  type TreeChild,
} from '../../shared/record-tree/index.js';
import {
  blockNodeIds,
  checkIndex,
  checkKeys,
  checkPageSize,
  checkRange,
  checkWrites,
  conflict,
  decodeChild,
  encodeChild,
  lastWrites,
  nodeId,
  plain,
  provenRead,
  rootMismatch,
  rowReader,
  sameBytes,
  OneReplaceAtATime,
} from './common.js';
import { DEFAULT_NODE_CACHE_ENTRIES, NodeCache, type NodeRow } from './node-cache.js';
import { CHECKPOINT_EVERY_MS, FALLBACK_AUTOCHECKPOINT, SqliteCheckpointer, WAL_SIZE_LIMIT_BYTES } from './sqlite-checkpointer.js';
import type { OpenRecordStoreOptions, ProvenRead, RecordStore, StoreMeta, StoredRecord } from './types.js';

type Db = Database.Database;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (id BLOB PRIMARY KEY NOT NULL, l BLOB NOT NULL, r BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  idx INTEGER NOT NULL,
  root BLOB NOT NULL,
  cnt INTEGER NOT NULL,
  root_child BLOB NOT NULL
);
`;

interface MetaRow {
  idx: number;
  root: Uint8Array;
  cnt: number;
  root_child: Uint8Array;
}

function pragmas(db: Db, cacheMiB: number): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma(`cache_size = ${-Math.round(cacheMiB * 1024)}`);
  db.pragma('foreign_keys = OFF');
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const REPLACE_TAG = '.replace-';

/** A driver error as a typed one (a BkvError passes through). */
function sqliteError(e: unknown, what: string): Error {
  if (isBkvError(e)) return e;
  const code = String((e as { code?: unknown }).code ?? '');
  const msg = (e as Error).message ?? String(e);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new BkvError('UNAVAILABLE', `sqlite record store: ${what}: ${msg}`, { sqliteCode: code });
  }
  return new BkvError('IO', `sqlite record store: ${what}: ${msg}`, code ? { sqliteCode: code } : {});
}

/** A Buffer view (no copy) of bytes, as better-sqlite3 binds BLOBs from Buffers. */
function buf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export class SqliteRecordStore implements RecordStore {
  readonly engine = 'sqlite' as const;
  private db!: Db;
  private st!: ReturnType<SqliteRecordStore['prepare']>;
  private readonly exports = new Set<Db>();
  private closed = false;
  private busy = false;
  private replaceSeq = 0;
  private readonly nodes: NodeCache;
  private dataVersion = -1;
  private checkpointer: SqliteCheckpointer | null = null;

  private constructor(
    readonly path: string,
    private readonly cacheMiB: number,
    nodeCacheEntries: number,
    private readonly checkpointEveryMs: number,
  ) {
    this.nodes = new NodeCache(nodeCacheEntries);
  }

  static async open(path: string, opts: OpenRecordStoreOptions = {}): Promise<SqliteRecordStore> {
    if (!path) throw new BkvError('USAGE', 'sqlite record store: a file path is needed (sqlite:<path>)');
    const entries = opts.nodeCacheEntries ?? DEFAULT_NODE_CACHE_ENTRIES;
    if (!Number.isSafeInteger(entries) || entries < 0) throw new BkvError('USAGE', 'sqlite record store: nodeCacheEntries must be a whole number');
    const every = opts.checkpointEveryMs ?? CHECKPOINT_EVERY_MS;
    if (!Number.isSafeInteger(every) || every < 1) throw new BkvError('USAGE', 'sqlite record store: checkpointEveryMs must be a positive whole number');
    const s = new SqliteRecordStore(path, opts.cacheMiB ?? 32, entries, every);
    // Files of a replace that never finished (the process died while loading) are useless.
    const dir = dirname(path);
    if (existsSync(dir)) {
      for (const f of readdirSync(dir)) if (f.startsWith(basename(path) + REPLACE_TAG)) rmSync(join(dir, f), { force: true });
    }
    s.connect();
    return s;
  }

  private connect(): void {
    try {
      this.db = new Database(this.path);
    } catch (e) {
      throw new BkvError('IO', `sqlite record store: cannot open ${basename(this.path)}: ${(e as Error).message}`);
    }
    pragmas(this.db, this.cacheMiB);
    this.db.pragma(`wal_autocheckpoint = ${FALLBACK_AUTOCHECKPOINT}`);
    this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    this.db.exec(SCHEMA);
    this.db
      .prepare('INSERT OR IGNORE INTO meta (one, idx, root, cnt, root_child) VALUES (1, 0, ?, 0, ?)')
      .run(Buffer.from(emptyHash()), Buffer.alloc(0));
    this.st = this.prepare(this.db);
    this.nodes.clear();
    this.dataVersion = this.st.dataVersion.get() as number;
    this.checkpointer = new SqliteCheckpointer(this.path, this.checkpointEveryMs);
  }

  /** Drops the node cache if another connection committed to the file since we last looked. */
  private checkDataVersion(): void {
    const v = this.st.dataVersion.get() as number;
    if (v !== this.dataVersion) {
      this.nodes.clear();
      this.dataVersion = v;
    }
  }

  /** A stored node: from the cache, else from the table (and then cached). */
  private nodeRow(id: Uint8Array): NodeRow | undefined {
    const hit = this.nodes.get(id);
    if (hit) return hit;
    const row = this.st.node.get(buf(id));
    if (row) this.nodes.set(id, row);
    return row;
  }

  private prepare(db: Db) {
    return {
      meta: db.prepare<[], MetaRow>('SELECT idx, root, cnt, root_child FROM meta WHERE one = 1'),
      node: db.prepare<[Uint8Array], { l: Uint8Array; r: Uint8Array }>('SELECT l, r FROM nodes WHERE id = ?'),
      record: db.prepare<[Uint8Array], { value: Uint8Array }>('SELECT value FROM records WHERE key = ?'),
      putRecord: db.prepare('INSERT INTO records (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      putNode: db.prepare('INSERT INTO nodes (id, l, r) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET l = excluded.l, r = excluded.r'),
      setMeta: db.prepare('UPDATE meta SET idx = ?, root = ?, cnt = ?, root_child = ? WHERE one = 1'),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      deleteRecords: db.prepare('DELETE FROM records WHERE key >= ? AND key <= ?'),
      deleteNodes: db.prepare('DELETE FROM nodes WHERE id >= ? AND id <= ?'),
      deleteNode: db.prepare('DELETE FROM nodes WHERE id = ?'),
      // Range scans of the primary key (a WITHOUT ROWID table is its key's b-tree).
      keysFrom: db.prepare<[Uint8Array, number], Uint8Array>('SELECT key FROM records WHERE key >= ? ORDER BY key LIMIT ?').pluck(),
      keysBetween: db
        .prepare<[Uint8Array, Uint8Array, number], Uint8Array>('SELECT key FROM records WHERE key >= ? AND key < ? ORDER BY key LIMIT ?')
        .pluck(),
    };
  }

  private live(): void {
    if (this.closed) throw new BkvError('USAGE', 'record store is closed');
    if (this.busy) throw new BkvError('UNAVAILABLE', 'sqlite record store: a replace is in progress');
  }

  private metaRow(): { meta: StoreMeta; rootChild: TreeChild } {
    const m = this.st.meta.get();
    if (!m) throw new BkvError('VERIFICATION_FAILED', 'sqlite record store: the meta row is missing');
    return { meta: { index: Number(m.idx), root: plain(m.root), count: Number(m.cnt) }, rootChild: decodeChild(plain(m.root_child)) };
  }

  async meta(): Promise<StoreMeta> {
    this.live();
    try {
      return this.metaRow().meta;
    } catch (e) {
      throw sqliteError(e, 'meta');
    }
  }

  async read(keys: Uint8Array[]): Promise<{ meta: StoreMeta; reads: ProvenRead[] }> {
    this.live();
    checkKeys(keys);
    // A read transaction: one snapshot for the meta, the nodes and the records.
    try {
      return this.db.transaction(() => {
        this.checkDataVersion();
        const { meta, rootChild } = this.metaRow();
        const reader = rowReader((id) => this.nodeRow(id));
        const reads = keys.map((k) => {
          const row = this.st.record.get(buf(k));
          return provenRead(rootChild, reader, k, row ? plain(row.value) : undefined);
        });
        return { meta, reads };
      }).deferred();
    } catch (e) {
      throw sqliteError(e, 'read');
    }
  }

  async apply(index: number, writes: StoredRecord[]): Promise<StoreMeta> {
    this.live();
    checkIndex(index);
    checkWrites(writes);
    const written: [Uint8Array, NodeRow][] = [];
    try {
      const next = this.db.transaction(() => {
        this.checkDataVersion();
        const { meta, rootChild } = this.metaRow();
        if (index <= meta.index) throw conflict(index, meta.index);
        const u = new TreeUpdater(rootChild, rowReader((id) => this.nodeRow(id)));
        for (const w of writes) u.set(w.key, valueHash(w.value));
        const r = u.finish();
        for (const w of lastWrites(writes)) this.st.putRecord.run(buf(w.key), buf(w.value));
        for (const c of r.changed) {
          const id = nodeId(c.depth, c.key);
          const row = { l: encodeChild(c.node.left), r: encodeChild(c.node.right) };
          this.st.putNode.run(buf(id), buf(row.l), buf(row.r));
          written.push([id, row]);
        }
        const next: StoreMeta = { index, root: r.rootHash, count: meta.count + r.inserted };
        this.st.setMeta.run(index, buf(r.rootHash), next.count, buf(encodeChild(r.root)));
        return next;
      }).immediate();
      // Committed: the cache follows the file.
      for (const [id, row] of written) this.nodes.set(id, row);
      return next;
    } catch (e) {
      this.nodes.clear();
      throw sqliteError(e, 'apply');
    }
  }

  async deleteRange(index: number, from: Uint8Array, to: Uint8Array | null): Promise<StoreMeta> {
    this.live();
    checkIndex(index);
    checkRange(from, to, 1);
    const blocks = alignedKeyBlocks(from, to);
    try {
      return this.db.transaction(() => {
        this.checkDataVersion();
        const { meta, rootChild } = this.metaRow();
        if (index <= meta.index) throw conflict(index, meta.index);
        const r = deleteBlocks(rootChild, rowReader((id) => this.nodeRow(id)), blocks);
        let gone = 0;
        for (const b of blocks) {
          gone += this.st.deleteRecords.run(buf(b.key), buf(lastKeyOf(b))).changes;
          const ids = blockNodeIds(b);
          this.st.deleteNodes.run(buf(ids.lo), buf(ids.hi));
        }
        for (const x of r.removed) this.st.deleteNode.run(buf(nodeId(x.depth, x.key)));
        for (const c of r.changed) {
          this.st.putNode.run(buf(nodeId(c.depth, c.key)), buf(encodeChild(c.node.left)), buf(encodeChild(c.node.right)));
        }
        const next: StoreMeta = { index, root: r.rootHash, count: meta.count - gone };
        this.st.setMeta.run(index, buf(r.rootHash), next.count, buf(encodeChild(r.root)));
        return next;
      }).immediate();
    } catch (e) {
      throw sqliteError(e, 'deleteRange');
    } finally {
      // Rows went away: the cache starts over (a range deletion is rare).
      this.nodes.clear();
    }
  }

  async listKeys(from: Uint8Array, to: Uint8Array | null, limit: number): Promise<Uint8Array[]> {
    this.live();
    checkRange(from, to, limit);
    try {
      const rows = to === null ? this.st.keysFrom.all(buf(from), limit) : this.st.keysBetween.all(buf(from), buf(to), limit);
      return rows.map(plain);
    } catch (e) {
      throw sqliteError(e, 'listKeys');
    }
  }

  async export(pageSize?: number): Promise<{ meta: StoreMeta; pages: AsyncIterable<StoredRecord[]> }> {
    this.live();
    const size = checkPageSize(pageSize);
    // Its own connection, holding one WAL read snapshot until the last page.
    const db = new Database(this.path, { readonly: true });
    this.exports.add(db);
    const release = (): void => {
      if (!this.exports.delete(db)) return;
      try {
        if (db.inTransaction) db.exec('COMMIT');
      } finally {
        db.close();
      }
    };
    let meta: StoreMeta;
    let first: Database.Statement<[number], { key: Uint8Array; value: Uint8Array }>;
    let next: Database.Statement<[Uint8Array, number], { key: Uint8Array; value: Uint8Array }>;
    try {
      db.exec('BEGIN');
      const m = db.prepare<[], MetaRow>('SELECT idx, root, cnt FROM meta WHERE one = 1').get();
      if (!m) throw new BkvError('VERIFICATION_FAILED', 'sqlite record store: the meta row is missing');
      meta = { index: Number(m.idx), root: plain(m.root), count: Number(m.cnt) };
      first = db.prepare<[number], { key: Uint8Array; value: Uint8Array }>('SELECT key, value FROM records ORDER BY key LIMIT ?');
      next = db.prepare<[Uint8Array, number], { key: Uint8Array; value: Uint8Array }>(
        'SELECT key, value FROM records WHERE key > ? ORDER BY key LIMIT ?',
      );
    } catch (e) {
      release();
      throw e;
    }
    const exports = this.exports;
    async function* pages(): AsyncIterable<StoredRecord[]> {
      try {
        let last: Uint8Array | null = null;
        for (;;) {
          if (!exports.has(db)) throw new BkvError('UNAVAILABLE', 'sqlite record store: the export was ended by close or replace');
          const rows: { key: Uint8Array; value: Uint8Array }[] = last === null ? first.all(size) : next.all(buf(last), size);
          if (rows.length === 0) return;
          const page: StoredRecord[] = rows.map((r) => ({ key: plain(r.key), value: plain(r.value) }));
          last = page[page.length - 1]!.key;
          yield page;
          if (rows.length < size) return;
        }
      } finally {
        release();
      }
    }
    return { meta, pages: pages() };
  }

  private readonly replacing = new OneReplaceAtATime();

  async replace(
    expect: { index: number; root: Uint8Array },
    pages: AsyncIterable<StoredRecord[]>,
    onProgress?: (n: number) => void,
  ): Promise<StoreMeta> {
    this.live();
    return this.replacing.run('sqlite', () => this.replaceOnce(expect, pages, onProgress));
  }

  private async replaceOnce(
    expect: { index: number; root: Uint8Array },
    pages: AsyncIterable<StoredRecord[]>,
    onProgress?: (n: number) => void,
  ): Promise<StoreMeta> {
    checkIndex(expect.index);
    const tmp = `${this.path}${REPLACE_TAG}${process.pid}-${++this.replaceSeq}`;
    rmSync(tmp, { force: true });
    const db = new Database(tmp);
    let meta: StoreMeta;
    try {
      // Loading a fresh file: no journal (if we crash, the file is discarded), one sync at the end.
      db.pragma('journal_mode = OFF');
      db.pragma('synchronous = OFF');
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma(`cache_size = ${-Math.round(Math.max(this.cacheMiB, 64) * 1024)}`);
      db.exec(SCHEMA);
      const putRecord = db.prepare('INSERT INTO records (key, value) VALUES (?, ?)');
      const putNode = db.prepare('INSERT INTO nodes (id, l, r) VALUES (?, ?, ?)');
      const b = new RootBuilder((d, k, node) => {
        putNode.run(buf(nodeId(d, k)), buf(encodeChild(node.left)), buf(encodeChild(node.right)));
      });
      const loadPage = db.transaction((page: StoredRecord[]) => {
        for (const r of page) {
          b.add(r.key, valueHash(r.value));
          putRecord.run(buf(r.key), buf(r.value));
        }
      });
      let n = 0;
      for await (const page of pages) {
        checkWrites(page);
        loadPage(page);
        n += page.length;
        onProgress?.(n);
      }
      const top = db.transaction(() => b.finishChild())(); // completes the last nodes
      const root = childHash(top);
      if (!sameBytes(root, expect.root)) throw rootMismatch(expect.root, root, n);
      db.prepare('INSERT INTO meta (one, idx, root, cnt, root_child) VALUES (1, ?, ?, ?, ?)').run(expect.index, buf(root), n, buf(encodeChild(top)));
      db.pragma('journal_mode = WAL');
      meta = { index: expect.index, root, count: n };
      db.close();
      fsyncPath(tmp);
    } catch (e) {
      if (db.open) db.close();
      rmSync(tmp, { force: true });
      throw sqliteError(e, 'replace');
    }
    // Swap: close every connection to the old file (checkpointing its WAL away), rename, reopen.
    this.busy = true;
    await this.stopCheckpointer();
    try {
      for (const x of [...this.exports]) {
        this.exports.delete(x);
        x.close();
      }
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      this.db.close();
      for (const suffix of ['-wal', '-shm']) rmSync(this.path + suffix, { force: true });
      renameSync(tmp, this.path);
      fsyncPath(dirname(this.path));
    } catch (e) {
      rmSync(tmp, { force: true });
      this.busy = false;
      if (this.db.open) this.checkpointer = new SqliteCheckpointer(this.path, this.checkpointEveryMs);
      else this.connect();
      throw new BkvError('IO', `sqlite record store: could not swap in the new file: ${(e as Error).message}`);
    }
    this.busy = false;
    this.connect();
    return meta;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const x of [...this.exports]) {
      this.exports.delete(x);
      x.close();
    }
    await this.stopCheckpointer();
    this.db.close();
  }

  private async stopCheckpointer(): Promise<void> {
    const c = this.checkpointer;
    this.checkpointer = null;
    await c?.stop();
  }
}
