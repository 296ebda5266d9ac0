/**
 * The PostgreSQL engine (node-postgres). One schema per store, so several fleet members can share
 * a server. A read is one statement (meta, path nodes and records together: one round trip, one
 * snapshot); an apply is one REPEATABLE READ transaction that locks the meta row, reads the path
 * nodes, and writes records, nodes and meta in one statement; `replace` loads staging tables and
 * renames them in, in one transaction, only when their root is the expected one.
 */
import pg from 'pg';
import { BkvError, isBkvError } from '../../shared/errors.js';
import {
  RootBuilder,
  TreeUpdater,
  alignedKeyBlocks,
  childHash,
  deleteBlocks,
  lastKeyOf,
  emptyHash,
  valueHash,
  type NodeReader,
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
  guessDepth,
  hexOf,
  lastWrites,
  nodeId,
  pathIds,
  plain,
  provenRead,
  rootMismatch,
  sameBytes,
  OneReplaceAtATime,
} from './common.js';
import type { OpenRecordStoreOptions, ProvenRead, RecordStore, StoreMeta, StoredRecord } from './types.js';

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function buf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function pgError(e: unknown, what: string): Error {
  if (isBkvError(e)) return e;
  const code = (e as { code?: string }).code;
  const msg = (e as Error).message ?? String(e);
  if (code === '40001' || code === '40P01') {
    return new BkvError('CONFLICT', `postgres record store: ${what} conflicted with a concurrent transaction (${msg})`, { pgCode: code });
  }
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === '57P01' || code === '57P03') {
    return new BkvError('UNAVAILABLE', `postgres record store: ${what}: ${msg}`, { pgCode: code });
  }
  return new BkvError('IO', `postgres record store: ${what}: ${msg}`, code ? { pgCode: code } : {});
}

interface MetaRow {
  idx: string;
  root: Buffer;
  cnt: string;
  root_child: Buffer;
}

function toMeta(m: MetaRow): { meta: StoreMeta; rootChild: TreeChild } {
  return {
    meta: { index: Number(m.idx), root: plain(m.root), count: Number(m.cnt) },
    rootChild: decodeChild(plain(m.root_child)),
  };
}

/** A node reader over rows fetched for depths below `depth`; notes when a path went deeper. */
function fetchedReader(rows: Map<string, { l: Uint8Array; r: Uint8Array }>, depth: number) {
  const state = { deeper: false };
  const read: NodeReader = (d, k) => {
    if (d >= depth) {
      state.deeper = true;
      return undefined;
    }
    const row = rows.get(hexOf(nodeId(d, k)));
    return row ? { left: decodeChild(row.l), right: decodeChild(row.r) } : undefined;
  };
  return { read, state };
}

export class PostgresRecordStore implements RecordStore {
  readonly engine = 'postgres' as const;
  private closed = false;
  private countHint = 0;
  private readonly held = new Set<pg.PoolClient>();
  private readonly t: { records: string; nodes: string; meta: string; recordsNext: string; nodesNext: string; schema: string };

  private constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
  ) {
    const s = `"${schema}"`;
    this.t = {
      schema: s,
      records: `${s}.records`,
      nodes: `${s}.nodes`,
      meta: `${s}.meta`,
      recordsNext: `${s}.records_next`,
      nodesNext: `${s}.nodes_next`,
    };
  }

  /** `url`: postgres://user@host:port/db[?schema=name]; the schema is created if missing. */
  static async open(url: string, opts: OpenRecordStoreOptions = {}): Promise<PostgresRecordStore> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new BkvError('USAGE', 'postgres record store: not a postgres:// URL');
    }
    const schema = u.searchParams.get('schema') ?? opts.schema ?? 'public';
    u.searchParams.delete('schema');
    if (!SCHEMA_NAME.test(schema)) throw new BkvError('USAGE', `postgres record store: invalid schema name ${JSON.stringify(schema)}`);
    const pool = new pg.Pool({ connectionString: u.toString(), max: opts.poolSize ?? 4 });
    pool.on('error', () => undefined); // an idle connection dropped by the server; the next query reports it
    const s = new PostgresRecordStore(pool, schema);
    try {
      await s.init();
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw pgError(e, 'open');
    }
    return s;
  }

  private async init(): Promise<void> {
    const t = this.t;
    const ddl = `
      CREATE SCHEMA IF NOT EXISTS ${t.schema};
      CREATE TABLE IF NOT EXISTS ${t.records} (key bytea PRIMARY KEY, value bytea NOT NULL);
      CREATE TABLE IF NOT EXISTS ${t.nodes} (id bytea PRIMARY KEY, l bytea NOT NULL, r bytea NOT NULL);
      CREATE TABLE IF NOT EXISTS ${t.meta} (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        idx bigint NOT NULL,
        root bytea NOT NULL,
        cnt bigint NOT NULL,
        root_child bytea NOT NULL
      );
      INSERT INTO ${t.meta} (one, idx, root, cnt, root_child)
        VALUES (true, 0, '\\x${hexOf(emptyHash())}', 0, '\\x') ON CONFLICT DO NOTHING;`;
    // Two members creating their schemas at once can race in the catalog: retry a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.pool.query(ddl);
        break;
      } catch (e) {
        if (attempt >= 3 || (e as { code?: string }).code !== '23505') throw e;
      }
    }
    this.countHint = (await this.meta()).count;
  }

  private live(): void {
    if (this.closed) throw new BkvError('USAGE', 'record store is closed');
  }

  async meta(): Promise<StoreMeta> {
    this.live();
    try {
      const r = await this.pool.query<MetaRow>({ name: `rs-meta-${this.schema}`, text: `SELECT idx, root, cnt, root_child FROM ${this.t.meta}` });
      const row = r.rows[0];
      if (!row) throw new BkvError('VERIFICATION_FAILED', 'postgres record store: the meta row is missing');
      const m = toMeta(row).meta;
      this.countHint = m.count;
      return m;
    } catch (e) {
      throw pgError(e, 'meta');
    }
  }

  async read(keys: Uint8Array[]): Promise<{ meta: StoreMeta; reads: ProvenRead[] }> {
    this.live();
    checkKeys(keys);
    const text = `
      SELECT 0 AS t, root_child AS a, root AS b, NULL::bytea AS c, idx, cnt FROM ${this.t.meta}
      UNION ALL SELECT 1, id, l, r, NULL, NULL FROM ${this.t.nodes} WHERE id = ANY($1::bytea[])
      UNION ALL SELECT 2, key, value, NULL, NULL, NULL FROM ${this.t.records} WHERE key = ANY($2::bytea[])`;
    // One statement is one snapshot. Fetch the likely depth; the rare deeper path costs a second go.
    for (const depth of [guessDepth(this.countHint), 256]) {
      let rows: { t: number; a: Buffer; b: Buffer; c: Buffer | null; idx: string | null; cnt: string | null }[];
      try {
        rows = (
          await this.pool.query({
            name: `rs-read-${this.schema}`,
            text,
            values: [pathIds(keys, depth).map(buf), keys.map(buf)],
          })
        ).rows;
      } catch (e) {
        throw pgError(e, 'read');
      }
      const metaRow = rows.find((r) => r.t === 0);
      if (!metaRow) throw new BkvError('VERIFICATION_FAILED', 'postgres record store: the meta row is missing');
      const { meta, rootChild } = toMeta({ idx: metaRow.idx!, cnt: metaRow.cnt!, root: metaRow.b, root_child: metaRow.a });
      this.countHint = meta.count;
      const nodes = new Map<string, { l: Uint8Array; r: Uint8Array }>();
      const values = new Map<string, Uint8Array>();
      for (const r of rows) {
        if (r.t === 1) nodes.set(hexOf(r.a), { l: plain(r.b), r: plain(r.c!) });
        else if (r.t === 2) values.set(hexOf(r.a), plain(r.b));
      }
      const { read, state } = fetchedReader(nodes, depth);
      try {
        const reads = keys.map((k) => provenRead(rootChild, read, k, values.get(hexOf(k))));
        return { meta, reads };
      } catch (e) {
        if (!state.deeper) throw e;
      }
    }
    throw new BkvError('INTERNAL', 'postgres record store: a path deeper than 256 levels');
  }

  private async withClient<T>(f: (c: pg.PoolClient) => Promise<T>, what: string): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      throw pgError(e, what);
    }
    this.held.add(c);
    let broken = false;
    try {
      return await f(c);
    } catch (e) {
      broken = !isBkvError(e);
      throw pgError(e, what);
    } finally {
      if (this.held.delete(c)) c.release(broken ? true : undefined);
    }
  }

  async apply(index: number, writes: StoredRecord[]): Promise<StoreMeta> {
    this.live();
    checkIndex(index);
    checkWrites(writes);
    const t = this.t;
    return this.withClient(async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      try {
        const m = await c.query<MetaRow>({
          name: `rs-lock-${this.schema}`,
          text: `SELECT idx, root, cnt, root_child FROM ${t.meta} FOR UPDATE`,
        });
        if (!m.rows[0]) throw new BkvError('VERIFICATION_FAILED', 'postgres record store: the meta row is missing');
        const { meta, rootChild } = toMeta(m.rows[0]);
        if (index <= meta.index) throw conflict(index, meta.index);
        const keys = writes.map((w) => w.key);
        let result: ReturnType<TreeUpdater['finish']> | null = null;
        for (const depth of [guessDepth(meta.count), 256]) {
          const rows = await c.query<{ id: Buffer; l: Buffer; r: Buffer }>({
            name: `rs-path-${this.schema}`,
            text: `SELECT id, l, r FROM ${t.nodes} WHERE id = ANY($1::bytea[])`,
            values: [pathIds(keys, depth).map(buf)],
          });
          const nodes = new Map<string, { l: Uint8Array; r: Uint8Array }>();
          for (const r of rows.rows) nodes.set(hexOf(r.id), { l: plain(r.l), r: plain(r.r) });
          const { read, state } = fetchedReader(nodes, depth);
          try {
            const u = new TreeUpdater(rootChild, read);
            for (const w of writes) u.set(w.key, valueHash(w.value));
            result = u.finish();
            break;
          } catch (e) {
            if (!state.deeper) throw e;
          }
        }
        if (!result) throw new BkvError('INTERNAL', 'postgres record store: a path deeper than 256 levels');
        const recs = lastWrites(writes);
        const next: StoreMeta = { index, root: result.rootHash, count: meta.count + result.inserted };
        await c.query({
          name: `rs-write-${this.schema}`,
          text: `
            WITH r AS (
              INSERT INTO ${t.records} (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[])
              ON CONFLICT (key) DO UPDATE SET value = excluded.value
            ), n AS (
              INSERT INTO ${t.nodes} (id, l, r) SELECT * FROM unnest($3::bytea[], $4::bytea[], $5::bytea[])
              ON CONFLICT (id) DO UPDATE SET l = excluded.l, r = excluded.r
            )
            UPDATE ${t.meta} SET idx = $6, root = $7, cnt = $8, root_child = $9 WHERE idx < $6`,
          values: [
            recs.map((w) => buf(w.key)),
            recs.map((w) => buf(w.value)),
            result.changed.map((n) => buf(nodeId(n.depth, n.key))),
            result.changed.map((n) => buf(encodeChild(n.node.left))),
            result.changed.map((n) => buf(encodeChild(n.node.right))),
            index,
            buf(next.root),
            next.count,
            buf(encodeChild(result.root)),
          ],
        });
        await c.query('COMMIT');
        this.countHint = next.count;
        return next;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }, 'apply');
  }

  async deleteRange(index: number, from: Uint8Array, to: Uint8Array | null): Promise<StoreMeta> {
    this.live();
    checkIndex(index);
    checkRange(from, to, 1);
    const blocks = alignedKeyBlocks(from, to);
    const t = this.t;
    return this.withClient(async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      try {
        const m = await c.query<MetaRow>({ name: `rs-lock-${this.schema}`, text: `SELECT idx, root, cnt, root_child FROM ${t.meta} FOR UPDATE` });
        if (!m.rows[0]) throw new BkvError('VERIFICATION_FAILED', 'postgres record store: the meta row is missing');
        const { meta, rootChild } = toMeta(m.rows[0]);
        if (index <= meta.index) throw conflict(index, meta.index);
        // The nodes on the blocks' paths, then any node the deletion asks for besides (a sibling it
        // must tell from a leaf), fetched with its path until the deletion goes through.
        const nodes = new Map<string, { l: Uint8Array; r: Uint8Array }>();
        const fetch = async (ids: Uint8Array[]): Promise<void> => {
          const rows = await c.query<{ id: Buffer; l: Buffer; r: Buffer }>({
            name: `rs-path-${this.schema}`,
            text: `SELECT id, l, r FROM ${t.nodes} WHERE id = ANY($1::bytea[])`,
            values: [ids.map(buf)],
          });
          for (const r of rows.rows) nodes.set(hexOf(r.id), { l: plain(r.l), r: plain(r.r) });
        };
        await fetch(pathIds(blocks.map((b) => b.key), Math.min(256, guessDepth(meta.count))));
        const read: NodeReader = (d, k) => {
          const row = nodes.get(hexOf(nodeId(d, k)));
          return row ? { left: decodeChild(row.l), right: decodeChild(row.r) } : undefined;
        };
        let result: ReturnType<typeof deleteBlocks> | null = null;
        for (let round = 0; round < 600 && !result; round++) {
          try {
            result = deleteBlocks(rootChild, read, blocks);
          } catch (e) {
            const d = (e as { details?: { depth?: unknown; key?: unknown } }).details;
            if (!isBkvError(e, 'VERIFICATION_FAILED') || typeof d?.depth !== 'number' || typeof d.key !== 'string') throw e;
            const id = nodeId(d.depth, Uint8Array.from(Buffer.from(d.key, 'hex')));
            if (nodes.has(hexOf(id))) throw e;
            const before = nodes.size;
            await fetch(pathIds([Uint8Array.from(Buffer.from(d.key, 'hex'))], d.depth + 1));
            if (nodes.size === before) throw e; // the store does not have it: inconsistent
          }
        }
        if (!result) throw new BkvError('INTERNAL', 'postgres record store: a range deletion needed too many nodes');
        let gone = 0;
        for (const b of blocks) {
          const ids = blockNodeIds(b);
          const r = await c.query(`DELETE FROM ${t.records} WHERE key >= $1 AND key <= $2`, [buf(b.key), buf(lastKeyOf(b))]);
          gone += r.rowCount ?? 0;
          await c.query(`DELETE FROM ${t.nodes} WHERE id >= $1 AND id <= $2`, [buf(ids.lo), buf(ids.hi)]);
        }
        if (result.removed.length) {
          await c.query(`DELETE FROM ${t.nodes} WHERE id = ANY($1::bytea[])`, [result.removed.map((x) => buf(nodeId(x.depth, x.key)))]);
        }
        const next: StoreMeta = { index, root: result.rootHash, count: meta.count - gone };
        await c.query({
          text: `
            WITH n AS (
              INSERT INTO ${t.nodes} (id, l, r) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])
              ON CONFLICT (id) DO UPDATE SET l = excluded.l, r = excluded.r
            )
            UPDATE ${t.meta} SET idx = $4, root = $5, cnt = $6, root_child = $7 WHERE idx < $4`,
          values: [
            result.changed.map((n) => buf(nodeId(n.depth, n.key))),
            result.changed.map((n) => buf(encodeChild(n.node.left))),
            result.changed.map((n) => buf(encodeChild(n.node.right))),
            index,
            buf(next.root),
            next.count,
            buf(encodeChild(result.root)),
          ],
        });
        await c.query('COMMIT');
        this.countHint = next.count;
        return next;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }, 'deleteRange');
  }

  async listKeys(from: Uint8Array, to: Uint8Array | null, limit: number): Promise<Uint8Array[]> {
    this.live();
    checkRange(from, to, limit);
    // A range scan of the primary key index (bytea compares bytewise); two statements rather than
    // one with an optional bound, so the planner always sees a plain index range.
    const t = this.t;
    try {
      const r =
        to === null
          ? await this.pool.query<{ key: Buffer }>({
              name: `rs-keys-from-${this.schema}`,
              text: `SELECT key FROM ${t.records} WHERE key >= $1 ORDER BY key LIMIT $2`,
              values: [buf(from), limit],
            })
          : await this.pool.query<{ key: Buffer }>({
              name: `rs-keys-between-${this.schema}`,
              text: `SELECT key FROM ${t.records} WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3`,
              values: [buf(from), buf(to), limit],
            });
      return r.rows.map((x) => plain(x.key));
    } catch (e) {
      throw pgError(e, 'listKeys');
    }
  }

  async export(pageSize?: number): Promise<{ meta: StoreMeta; pages: AsyncIterable<StoredRecord[]> }> {
    this.live();
    const size = checkPageSize(pageSize);
    const t = this.t;
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      throw pgError(e, 'export');
    }
    this.held.add(c);
    const held = this.held;
    let released = false;
    const release = async (broken: boolean): Promise<void> => {
      if (released) return;
      released = true;
      if (!held.delete(c)) return; // close() already took it back
      if (!broken) await c.query('COMMIT').catch(() => (broken = true));
      c.release(broken ? true : undefined);
    };
    let meta: StoreMeta;
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const m = await c.query<MetaRow>(`SELECT idx, root, cnt, root_child FROM ${t.meta}`);
      if (!m.rows[0]) throw new BkvError('VERIFICATION_FAILED', 'postgres record store: the meta row is missing');
      meta = toMeta(m.rows[0]).meta;
    } catch (e) {
      await release(true);
      throw pgError(e, 'export');
    }
    async function* pages(): AsyncIterable<StoredRecord[]> {
      try {
        let last: Uint8Array | null = null;
        for (;;) {
          const r: pg.QueryResult<{ key: Buffer; value: Buffer }> =
            last === null
              ? await c.query(`SELECT key, value FROM ${t.records} ORDER BY key LIMIT $1`, [size])
              : await c.query(`SELECT key, value FROM ${t.records} WHERE key > $1 ORDER BY key LIMIT $2`, [buf(last), size]);
          if (r.rows.length === 0) break;
          const page = r.rows.map((x) => ({ key: plain(x.key), value: plain(x.value) }));
          last = page[page.length - 1]!.key;
          yield page;
          if (r.rows.length < size) break;
        }
      } catch (e) {
        throw pgError(e, 'export');
      } finally {
        await release(false);
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
    return this.replacing.run('postgres', () => this.replaceOnce(expect, pages, onProgress));
  }

  private async replaceOnce(
    expect: { index: number; root: Uint8Array },
    pages: AsyncIterable<StoredRecord[]>,
    onProgress?: (n: number) => void,
  ): Promise<StoreMeta> {
    checkIndex(expect.index);
    const t = this.t;
    return this.withClient(async (c) => {
      await c.query(`DROP TABLE IF EXISTS ${t.recordsNext}, ${t.nodesNext}`);
      await c.query(`CREATE TABLE ${t.recordsNext} (key bytea NOT NULL, value bytea NOT NULL)`);
      await c.query(`CREATE TABLE ${t.nodesNext} (id bytea NOT NULL, l bytea NOT NULL, r bytea NOT NULL)`);
      const dropStaging = () => c.query(`DROP TABLE IF EXISTS ${t.recordsNext}, ${t.nodesNext}`).catch(() => undefined);
      try {
        let pendingNodes: { id: Buffer; l: Buffer; r: Buffer }[] = [];
        const b = new RootBuilder((d, k, node) => {
          pendingNodes.push({ id: buf(nodeId(d, k)), l: buf(encodeChild(node.left)), r: buf(encodeChild(node.right)) });
        });
        const flushNodes = async (): Promise<void> => {
          if (pendingNodes.length === 0) return;
          const ns = pendingNodes;
          pendingNodes = [];
          await c.query({
            name: `rs-load-nodes-${this.schema}`,
            text: `INSERT INTO ${t.nodesNext} (id, l, r) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])`,
            values: [ns.map((n) => n.id), ns.map((n) => n.l), ns.map((n) => n.r)],
          });
        };
        let n = 0;
        for await (const page of pages) {
          checkWrites(page);
          for (const r of page) b.add(r.key, valueHash(r.value));
          if (page.length) {
            await c.query({
              name: `rs-load-records-${this.schema}`,
              text: `INSERT INTO ${t.recordsNext} (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[])`,
              values: [page.map((r) => buf(r.key)), page.map((r) => buf(r.value))],
            });
          }
          await flushNodes();
          n += page.length;
          onProgress?.(n);
        }
        const top = b.finishChild();
        await flushNodes();
        const root = childHash(top);
        if (!sameBytes(root, expect.root)) throw rootMismatch(expect.root, root, n);
        // Indexes built once, after the load, then the swap in one transaction.
        await c.query(`ALTER TABLE ${t.recordsNext} ADD CONSTRAINT records_next_pkey PRIMARY KEY (key)`);
        await c.query(`ALTER TABLE ${t.nodesNext} ADD CONSTRAINT nodes_next_pkey PRIMARY KEY (id)`);
        await c.query('BEGIN');
        try {
          await c.query(`SELECT 1 FROM ${t.meta} FOR UPDATE`);
          await c.query(`DROP TABLE ${t.records}, ${t.nodes}`);
          await c.query(`ALTER TABLE ${t.recordsNext} RENAME TO records`);
          await c.query(`ALTER INDEX ${t.schema}.records_next_pkey RENAME TO records_pkey`);
          await c.query(`ALTER TABLE ${t.nodesNext} RENAME TO nodes`);
          await c.query(`ALTER INDEX ${t.schema}.nodes_next_pkey RENAME TO nodes_pkey`);
          await c.query(`UPDATE ${t.meta} SET idx = $1, root = $2, cnt = $3, root_child = $4`, [
            expect.index,
            buf(root),
            n,
            buf(encodeChild(top)),
          ]);
          await c.query('COMMIT');
        } catch (e) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        this.countHint = n;
        return { index: expect.index, root, count: n };
      } catch (e) {
        await dropStaging();
        throw e;
      }
    }, 'replace');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.held]) {
      this.held.delete(c);
      c.release(true);
    }
    await this.pool.end();
  }
}
