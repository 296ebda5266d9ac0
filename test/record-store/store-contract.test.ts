/**
 * One contract for the three record-store engines: the same tests against memory, a real SQLite
 * file and a real PostgreSQL server, including a hostile host that edits the database directly.
 * Whatever the store returns is checked the way the core checks it (record-tree proofs against
 * the root the core holds).
 */
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import pg from 'pg';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  MemoryRecordStore,
  encodeChild,
  nodeId,
  openRecordStore,
  type RecordStore,
  type StoredRecord,
} from '../../src/host/record-store/index.js';
import { RootBuilder, applyUpdates, compareKeys, keyBit, valueHash, verifyRecord, type TreeChild } from '../../src/shared/record-tree/index.js';
import { isBkvError } from '../../src/shared/errors.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

const sha = (s: string): Uint8Array => new Uint8Array(createHash('sha256').update(s).digest());
const k = (i: number): Uint8Array => sha(`key ${i}`);
const val = (i: number, v = 0): Uint8Array => new TextEncoder().encode(`sealed record ${i} version ${v} `.repeat(1 + (i % 3)));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeDefined();
  expect(isBkvError(err, code as never), String(err)).toBe(true);
}

async function* pagesOf(records: StoredRecord[], size: number): AsyncIterable<StoredRecord[]> {
  for (let i = 0; i < records.length; i += size) yield records.slice(i, i + size);
}

function rootOf(records: StoredRecord[]): Uint8Array {
  const b = new RootBuilder();
  for (const r of [...records].sort((a, b) => compareKeys(a.key, b.key))) b.add(r.key, valueHash(r.value));
  return b.finish();
}

/** Reads `keys` and checks each like the core: returns the keys whose read failed verification. No read may pass with a wrong value. */
async function coreCheck(store: RecordStore, coreRoot: Uint8Array, honest: Map<string, Uint8Array>, keys: Uint8Array[]): Promise<Set<string>> {
  const failed = new Set<string>();
  let reads;
  try {
    reads = (await store.read(keys)).reads;
  } catch (e) {
    // The store could not even produce proofs (a broken database): nothing reaches the core.
    expect(isBkvError(e), String(e)).toBe(true);
    return new Set(keys.map(hex));
  }
  for (const r of reads) {
    try {
      verifyRecord(coreRoot, r.key, r.value, r.proof);
    } catch (e) {
      expect(isBkvError(e, 'VERIFICATION_FAILED', 'MALFORMED'), String(e)).toBe(true);
      failed.add(hex(r.key));
      continue;
    }
    // Verified: it must be the honest value.
    expect(r.value === null ? null : hex(r.value)).toBe(honest.has(hex(r.key)) ? hex(honest.get(hex(r.key))!) : null);
  }
  return failed;
}

interface Hostile {
  swapValues(k1: Uint8Array, k2: Uint8Array): Promise<void>;
  deleteRow(key: Uint8Array): Promise<void>;
  /** Flips a bit in one child of the internal node at `depth` on `key`'s path. */
  corruptNode(depth: number, key: Uint8Array, side: 'left' | 'right'): Promise<void>;
  /** Keeps a copy of the whole store; returns a function that puts it back. */
  copy(): Promise<() => Promise<void>>;
}

interface Ctx {
  store: RecordStore;
  /** Closes and opens the same store again (not for memory). */
  reopen(): Promise<void>;
  /** Makes the next apply fail inside its transaction, after records and nodes were written. */
  failNextApply(): Promise<void>;
  clearFailure(): Promise<void>;
  hostile: Hostile;
  /** Every stored node row (id and both children, hex), sorted: to compare stores node for node. */
  nodeRows(): Promise<string[]>;
  dispose(): Promise<void>;
}

interface Engine {
  name: 'memory' | 'sqlite' | 'postgres';
  setup(): Promise<void>;
  teardown(): Promise<void>;
  create(): Promise<Ctx>;
}

const flipLast = (b: Buffer): Buffer => {
  const x = Buffer.from(b);
  x[x.length - 1]! ^= 1;
  return x;
};

const memoryEngine: Engine = {
  name: 'memory',
  setup: async () => undefined,
  teardown: async () => undefined,
  create: async () => {
    const store = (await openRecordStore('memory:')) as MemoryRecordStore;
    return {
      store,
      reopen: async () => {
        throw new Error('memory stores do not survive close');
      },
      failNextApply: async () => store.failNextApply('after-nodes'),
      clearFailure: async () => undefined,
      nodeRows: async () =>
        [...(store.snapshot().state.nodes as Map<string, { left: TreeChild; right: TreeChild }>)]
          .map(([id, n]) => `${id}/${hex(encodeChild(n.left))}/${hex(encodeChild(n.right))}`)
          .sort(),
      hostile: {
        swapValues: async (a, b) => store.swapValues(a, b),
        deleteRow: async (a) => store.deleteRow(a),
        corruptNode: async (d, key, side) => store.corruptNode(d, key, side),
        copy: async () => {
          const snap = store.snapshot();
          return async () => store.rollbackTo(snap);
        },
      },
      dispose: () => store.close(),
    };
  },
};

let sqliteDir = '';
let sqliteSeq = 0;
const sqliteEngine: Engine = {
  name: 'sqlite',
  setup: async () => {
    sqliteDir = mkdtempSync(join(tmpdir(), 'bkv-rs-sqlite-'));
  },
  teardown: async () => rmSync(sqliteDir, { recursive: true, force: true }),
  create: async () => {
    const path = join(sqliteDir, `store-${++sqliteSeq}.db`);
    const url = `sqlite:${path}`;
    // The hostile host: its own connection to the real file.
    const edit = <T>(f: (db: Database.Database) => T): T => {
      const db = new Database(path);
      try {
        return f(db);
      } finally {
        db.close();
      }
    };
    const ctx: Ctx = {
      store: await openRecordStore(url),
      reopen: async () => {
        await ctx.store.close();
        ctx.store = await openRecordStore(url);
      },
      failNextApply: async () =>
        edit((db) => void db.exec("CREATE TRIGGER fail_apply BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'injected failure'); END;")),
      clearFailure: async () => edit((db) => void db.exec('DROP TRIGGER IF EXISTS fail_apply')),
      nodeRows: async () =>
        edit((db) => (db.prepare('SELECT id, l, r FROM nodes').all() as { id: Buffer; l: Buffer; r: Buffer }[]).map((r) => `${hex(r.id)}/${hex(r.l)}/${hex(r.r)}`).sort()),
      hostile: {
        swapValues: async (a, b) =>
          edit((db) => {
            const get = db.prepare<[Buffer], { value: Buffer }>('SELECT value FROM records WHERE key = ?');
            const va = get.get(Buffer.from(a))!.value;
            const vb = get.get(Buffer.from(b))!.value;
            const put = db.prepare('UPDATE records SET value = ? WHERE key = ?');
            put.run(vb, Buffer.from(a));
            put.run(va, Buffer.from(b));
          }),
        deleteRow: async (a) => edit((db) => void db.prepare('DELETE FROM records WHERE key = ?').run(Buffer.from(a))),
        corruptNode: async (d, key, side) =>
          edit((db) => {
            const id = Buffer.from(nodeId(d, key));
            const row = db.prepare<[Buffer], { l: Buffer; r: Buffer }>('SELECT l, r FROM nodes WHERE id = ?').get(id)!;
            db.prepare(`UPDATE nodes SET ${side === 'left' ? 'l' : 'r'} = ? WHERE id = ?`).run(flipLast(side === 'left' ? row.l : row.r), id);
          }),
        copy: async () => {
          const saved = `${path}.saved-${sqliteSeq}`;
          edit((db) => db.exec(`VACUUM INTO '${saved}'`));
          return async () => {
            // Restore the old file under the host's feet: close, copy back, reopen.
            await ctx.store.close();
            rmSync(`${path}-wal`, { force: true });
            rmSync(`${path}-shm`, { force: true });
            copyFileSync(saved, path);
            ctx.store = await openRecordStore(url);
          };
        },
      },
      dispose: () => ctx.store.close(),
    };
    return ctx;
  },
};

let server: TestPostgres | null = null;
let admin: pg.Client | null = null;
let schemaSeq = 0;
const postgresEngine: Engine = {
  name: 'postgres',
  setup: async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  },
  teardown: async () => {
    await admin?.end().catch(() => undefined);
    await server?.stop();
  },
  create: async () => {
    const schema = `member_${++schemaSeq}`;
    const url = `${server!.url}?schema=${schema}`;
    const q = (text: string, values: unknown[] = []) => admin!.query(text, values);
    const ctx: Ctx = {
      store: await openRecordStore(url),
      reopen: async () => {
        await ctx.store.close();
        ctx.store = await openRecordStore(url);
      },
      failNextApply: async () => {
        await q(`CREATE OR REPLACE FUNCTION ${schema}.fail_apply() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`);
        await q(`CREATE TRIGGER fail_apply BEFORE UPDATE ON ${schema}.meta FOR EACH ROW EXECUTE FUNCTION ${schema}.fail_apply()`);
      },
      clearFailure: async () => {
        await q(`DROP TRIGGER IF EXISTS fail_apply ON ${schema}.meta`);
      },
      nodeRows: async () =>
        ((await q(`SELECT id, l, r FROM ${schema}.nodes`)).rows as { id: Buffer; l: Buffer; r: Buffer }[]).map((r) => `${hex(r.id)}/${hex(r.l)}/${hex(r.r)}`).sort(),
      hostile: {
        swapValues: async (a, b) => {
          await q(
            `UPDATE ${schema}.records r SET value = o.value FROM ${schema}.records o
             WHERE (r.key = $1 AND o.key = $2) OR (r.key = $2 AND o.key = $1)`,
            [Buffer.from(a), Buffer.from(b)],
          );
        },
        deleteRow: async (a) => {
          await q(`DELETE FROM ${schema}.records WHERE key = $1`, [Buffer.from(a)]);
        },
        corruptNode: async (d, key, side) => {
          const id = Buffer.from(nodeId(d, key));
          const row = (await q(`SELECT l, r FROM ${schema}.nodes WHERE id = $1`, [id])).rows[0] as { l: Buffer; r: Buffer };
          await q(`UPDATE ${schema}.nodes SET ${side === 'left' ? 'l' : 'r'} = $1 WHERE id = $2`, [flipLast(side === 'left' ? row.l : row.r), id]);
        },
        copy: async () => {
          const bak = `${schema}_bak`;
          await q(`DROP SCHEMA IF EXISTS ${bak} CASCADE; CREATE SCHEMA ${bak}`);
          for (const t of ['records', 'nodes', 'meta']) await q(`CREATE TABLE ${bak}.${t} AS TABLE ${schema}.${t}`);
          return async () => {
            await q('BEGIN');
            for (const t of ['records', 'nodes', 'meta']) {
              await q(`DELETE FROM ${schema}.${t}`);
              await q(`INSERT INTO ${schema}.${t} SELECT * FROM ${bak}.${t}`);
            }
            await q('COMMIT');
          };
        },
      },
      dispose: () => ctx.store.close(),
    };
    return ctx;
  },
};

describe.each([memoryEngine, sqliteEngine, postgresEngine])('record store contract: $name', (engine) => {
  let ctx: Ctx;
  beforeAll(() => engine.setup(), 120_000);
  afterAll(() => engine.teardown(), 120_000);
  beforeEach(async () => {
    ctx = await engine.create();
  });
  afterEach(async () => {
    await ctx.dispose();
  });

  const first = Array.from({ length: 40 }, (_, i) => ({ key: k(i), value: val(i) }));
  const honestOf = (records: StoredRecord[]) => new Map(records.map((r) => [hex(r.key), r.value]));

  it('a new store is at index 0 with the empty root', async () => {
    const m = await ctx.store.meta();
    expect(m).toEqual({ index: 0, root: new Uint8Array(32), count: 0 });
    expect(ctx.store.engine).toBe(engine.name);
    const { meta, reads } = await ctx.store.read([k(1)]);
    expect(meta.index).toBe(0);
    verifyRecord(meta.root, k(1), reads[0]!.value, reads[0]!.proof);
    expect(reads[0]!.value).toBeNull();
  });

  it('round trip: applies, reads with proofs that verify, and agrees with the core (applyUpdates)', async () => {
    const m1 = await ctx.store.apply(1, first);
    expect(m1.index).toBe(1);
    expect(m1.count).toBe(40);
    expect(m1.root).toEqual(rootOf(first));
    expect(await ctx.store.meta()).toEqual(m1);

    const probe = [k(3), k(39), k(1000), k(0)];
    const { meta, reads } = await ctx.store.read(probe);
    expect(meta).toEqual(m1);
    expect(reads.map((r) => r.key)).toEqual(probe);
    expect(reads[0]!.value).toEqual(val(3));
    expect(reads[2]!.value).toBeNull();
    for (const r of reads) verifyRecord(m1.root, r.key, r.value, r.proof);

    // Batch 2: updates, new keys, one key twice; the core computes the root from proofs alone.
    const batch: StoredRecord[] = [
      { key: k(5), value: val(5, 1) },
      { key: k(100), value: val(100) },
      { key: k(101), value: val(101) },
      { key: k(5), value: val(5, 2) },
      { key: k(100), value: val(100, 1) },
    ];
    const before = await ctx.store.read([k(5), k(100), k(101)]);
    const coreRoot = applyUpdates(
      m1.root,
      before.reads.map((r) => ({ key: r.key, proof: r.proof })),
      batch.map((w) => ({ key: w.key, valueHash: valueHash(w.value) })),
    );
    const m2 = await ctx.store.apply(2, batch);
    expect(m2).toEqual({ index: 2, root: coreRoot, count: 42 });
    const all = [...first.filter((r) => hex(r.key) !== hex(k(5))), { key: k(5), value: val(5, 2) }, { key: k(100), value: val(100, 1) }, { key: k(101), value: val(101) }];
    expect(m2.root).toEqual(rootOf(all));
    const after = await ctx.store.read([k(5), k(100), k(101), k(7)]);
    expect(after.reads.map((r) => r.value)).toEqual([val(5, 2), val(100, 1), val(101), val(7)]);
    for (const r of after.reads) verifyRecord(m2.root, r.key, r.value, r.proof);

    // Indices may skip; an empty batch still moves the index.
    const m3 = await ctx.store.apply(10, []);
    expect(m3).toEqual({ ...m2, index: 10 });
  });

  it('many records in many batches: every proof verifies, present and absent', async () => {
    let index = 0;
    const all: StoredRecord[] = [];
    for (let b = 0; b < 6; b++) {
      const batch = Array.from({ length: 50 }, (_, i) => ({ key: k(1000 + b * 50 + i), value: val(b * 50 + i) }));
      all.push(...batch);
      await ctx.store.apply(++index, batch);
    }
    const m = await ctx.store.meta();
    expect(m.count).toBe(300);
    expect(m.root).toEqual(rootOf(all));
    const keys = [...all.map((r) => r.key), ...Array.from({ length: 30 }, (_, i) => k(-1 - i))];
    const failed = await coreCheck(ctx.store, m.root, honestOf(all), keys);
    expect([...failed]).toEqual([]);
  });

  it('keys that share up to 255 bits: long chains of single-child nodes, deep proofs', async () => {
    const base = sha('deep');
    const near = (bitFromEnd: number): Uint8Array => {
      const x = base.slice();
      x[31 - (bitFromEnd >> 3)]! ^= 1 << (bitFromEnd & 7);
      return x;
    };
    const records = [base, near(0), near(3), near(40), near(200)].map((key, i) => ({ key, value: val(i) }));
    // Many ordinary keys too, so that the store's depth guess is far above log2 of nothing.
    const m1 = await ctx.store.apply(1, first);
    const m2 = await ctx.store.apply(2, records.slice(0, 2));
    const m3 = await ctx.store.apply(3, records.slice(2));
    expect(m3.count).toBe(m1.count + 5);
    expect(m2.root).not.toEqual(m3.root);
    const all = [...first, ...records];
    expect(m3.root).toEqual(rootOf(all));
    const absent = [near(1), near(100), near(255)];
    const { reads } = await ctx.store.read([...records.map((r) => r.key), ...absent]);
    expect(reads[1]!.proof.length).toBeGreaterThan(2 + 64 + 2 + 32); // a leaf at depth 256
    for (const r of reads) verifyRecord(m3.root, r.key, r.value, r.proof);
    expect(reads.map((r) => r.value)).toEqual([...records.map((r) => r.value), null, null, null]);
  });

  it('random batches of clustered keys: the store, the core and a rebuild agree at every step', async () => {
    // Keys from four byte values: long shared prefixes, single-child chains, splits at any depth.
    const clustered = fc
      .array(fc.constantFrom(0x00, 0x01, 0x80, 0xff), { minLength: 32, maxLength: 32 })
      .map((a) => Uint8Array.from(a));
    const write = fc.record({ key: clustered, value: fc.uint8Array({ maxLength: 40 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(write, { maxLength: 8 }), { minLength: 1, maxLength: 5 }), fc.array(clustered, { maxLength: 4 }), async (batches, probes) => {
        const c = await engine.create();
        try {
          const state = new Map<string, StoredRecord>();
          let root: Uint8Array = new Uint8Array(32);
          let index = 0;
          for (const batch of batches) {
            const { reads } = await c.store.read(batch.map((w) => w.key));
            const coreRoot = applyUpdates(
              root,
              reads.map((r) => ({ key: r.key, proof: r.proof })),
              batch.map((w) => ({ key: w.key, valueHash: valueHash(w.value) })),
            );
            for (const w of batch) state.set(hex(w.key), w);
            const m = await c.store.apply(++index, batch);
            expect(hex(m.root)).toBe(hex(coreRoot));
            expect(hex(m.root)).toBe(hex(rootOf([...state.values()])));
            expect(m.count).toBe(state.size);
            root = m.root;
          }
          const honest = new Map([...state.entries()].map(([h, r]) => [h, r.value]));
          const failed = await coreCheck(c.store, root, honest, [...[...state.values()].map((r) => r.key), ...probes]);
          expect([...failed]).toEqual([]);
        } finally {
          await c.dispose();
        }
      }),
      { numRuns: engine.name === 'memory' ? 60 : 12 },
    );
  });

  it('CONFLICT on an index that is not above the current one, and nothing changes', async () => {
    const m1 = await ctx.store.apply(5, first);
    await expectCode(ctx.store.apply(5, [{ key: k(1), value: val(1, 9) }]), 'CONFLICT');
    await expectCode(ctx.store.apply(4, [{ key: k(777), value: val(777) }]), 'CONFLICT');
    expect(await ctx.store.meta()).toEqual(m1);
    const { reads } = await ctx.store.read([k(1), k(777)]);
    expect(reads.map((r) => r.value)).toEqual([val(1), null]);
  });

  it('an apply that fails inside its transaction leaves meta, records and nodes unchanged', async () => {
    const m1 = await ctx.store.apply(1, first);
    const keys = [k(1), k(2), k(500), k(501)];
    const before = await ctx.store.read(keys);
    await ctx.failNextApply();
    let failed = false;
    try {
      await ctx.store.apply(2, [
        { key: k(1), value: val(1, 5) },
        { key: k(500), value: val(500) },
        { key: k(501), value: val(501) },
      ]);
    } catch (e) {
      failed = isBkvError(e);
    }
    expect(failed).toBe(true);
    await ctx.clearFailure();
    expect(await ctx.store.meta()).toEqual(m1);
    const after = await ctx.store.read(keys);
    expect(after).toEqual(before);
    // The same index goes through afterwards.
    const m2 = await ctx.store.apply(2, [{ key: k(500), value: val(500) }]);
    expect(m2.count).toBe(41);
    const r = await ctx.store.read([k(500), k(501), k(1)]);
    for (const x of r.reads) verifyRecord(m2.root, x.key, x.value, x.proof);
    expect(r.reads.map((x) => x.value)).toEqual([val(500), null, val(1)]);
  });

  it('rejects malformed arguments', async () => {
    await expectCode(ctx.store.apply(1, [{ key: new Uint8Array(31), value: val(1) }]), 'USAGE');
    await expectCode(ctx.store.read([new Uint8Array(33)]), 'USAGE');
    await expectCode(ctx.store.apply(-1, []), 'USAGE');
    expect((await ctx.store.meta()).index).toBe(0);
  });

  it('listKeys: the ids of a range in key order, bounded by the limit', async () => {
    const key = (...b: number[]): Uint8Array => {
      const x = new Uint8Array(32);
      x.set(b);
      return x;
    };
    const ones = new Uint8Array(32).fill(0xff);
    const zero = new Uint8Array(32);
    // Empty store.
    expect(await ctx.store.listKeys(zero, null, 10)).toEqual([]);
    const fixed = [key(0), key(0, 0, 1), key(0x10), key(0x10, 5), key(0x7f, 0xff), key(0x80), key(0xc0, 1), ones];
    const recs = [...first, ...fixed.map((key, i) => ({ key, value: val(i) }))];
    await ctx.store.apply(1, recs);
    const all = recs.map((r) => r.key).sort(compareKeys);
    // The whole key space, in pages of 7: every id once, increasing.
    const paged: Uint8Array[] = [];
    for (let from: Uint8Array | null = zero; from; ) {
      const page = await ctx.store.listKeys(from, null, 7);
      expect(page.length).toBeLessThanOrEqual(7);
      paged.push(...page);
      if (page.length < 7) break;
      const next = page[page.length - 1]!.slice();
      let i = 31;
      while (i >= 0 && next[i] === 0xff) next[i--] = 0;
      if (i < 0) break;
      next[i]!++;
      from = next;
    }
    expect(paged.map(hex)).toEqual(all.map(hex));
    // Bounds: from inclusive, to exclusive; null is the end of the key space (ones included).
    const inRange = (f: Uint8Array, t: Uint8Array | null) =>
      all.filter((x) => compareKeys(x, f) >= 0 && (t === null || compareKeys(x, t) < 0)).map(hex);
    const ranges: [Uint8Array, Uint8Array | null][] = [
      [key(0x10), key(0x80)],
      [key(0x10, 5), key(0x10, 5)],
      [key(0x10, 5), key(0x10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)],
      [key(0x80), null],
      [ones, null],
      [key(0x80), key(0x10)],
      [zero, key(0, 0, 1)],
      [key(0xc0, 2), key(0xff)],
    ];
    for (const [f, t] of ranges) {
      expect((await ctx.store.listKeys(f, t, 1000)).map(hex)).toEqual(inRange(f, t));
      expect((await ctx.store.listKeys(f, t, 2)).map(hex)).toEqual(inRange(f, t).slice(0, 2));
    }
    expect((await ctx.store.listKeys(key(0x10, 5), key(0x10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 5)).map(hex)).toEqual([hex(key(0x10, 5))]);
    expect(await ctx.store.listKeys(ones, null, 1)).toEqual([ones]);
    // A later apply shows in the next listing (new ids, in order).
    await ctx.store.apply(2, [{ key: key(0x10, 4), value: val(1) }, { key: key(0x10, 5), value: val(2, 1) }]);
    expect((await ctx.store.listKeys(key(0x10), key(0x11), 10)).map(hex)).toEqual([key(0x10), key(0x10, 4), key(0x10, 5)].map(hex));
    // Malformed arguments.
    await expectCode(ctx.store.listKeys(new Uint8Array(31), null, 1), 'USAGE');
    await expectCode(ctx.store.listKeys(zero, new Uint8Array(33), 1), 'USAGE');
    await expectCode(ctx.store.listKeys(zero, null, 0), 'USAGE');
    await expectCode(ctx.store.listKeys(zero, null, 1.5), 'USAGE');
  });

  it('deleteRange: records and their nodes go, the tree stays compacted, node for node a fresh store of the rest', async () => {
    const key = (...b: number[]): Uint8Array => {
      const x = new Uint8Array(32);
      x.set(b);
      return x;
    };
    // Random keys and clustered ones (leaves that move up, single-child chains), values of every record.
    const clustered = [key(0x40), key(0x40, 1), key(0x40, 1, 0, 1), key(0x7f, 0xff), key(0x80), key(0x80, 0, 0, 0, 1), key(0xbf)];
    const recs = [...first, ...Array.from({ length: 60 }, (_, i) => ({ key: k(300 + i), value: val(300 + i) })), ...clustered.map((key, i) => ({ key, value: val(900 + i) }))];
    let index = 0;
    let live = new Map(recs.map((r) => [hex(r.key), r]));
    await ctx.store.apply(++index, recs);
    const cases: [Uint8Array, Uint8Array | null][] = [
      [key(0x40, 1), key(0x40, 2)], // two records of a chain: the third's leaf moves up
      [key(0x7f), key(0x80, 0, 0, 0, 1)], // across a half boundary
      [key(0xc0), null], // a suffix
      [key(0x10, 0x20), key(0x10, 0x20)], // empty
      [key(0x00), key(0x33, 0x44, 0x55)], // a prefix, not aligned
    ];
    for (const [from, to] of cases) {
      const inRange = (x: Uint8Array) => compareKeys(x, from) >= 0 && (to === null || compareKeys(x, to) < 0);
      const gone = [...live.values()].filter((r) => inRange(r.key));
      live = new Map([...live].filter(([, r]) => !inRange(r.key)));
      const m = await ctx.store.deleteRange(++index, from, to);
      const rest = [...live.values()];
      expect(m).toEqual({ index, root: rootOf(rest), count: rest.length });
      expect(await ctx.store.meta()).toEqual(m);
      expect(await ctx.store.listKeys(from, to, 1000)).toEqual([]);
      // Reads: every deleted id proves absent, every other record proves present, against the new root.
      const failed = await coreCheck(ctx.store, m.root, honestOf(rest), [...gone.map((r) => r.key), ...rest.map((r) => r.key)]);
      expect([...failed]).toEqual([]);
      // Node for node what a fresh store of the remaining records holds (no row left behind).
      const fresh = await engine.create();
      try {
        await fresh.store.replace({ index, root: m.root }, pagesOf(rest.sort((a, b) => compareKeys(a.key, b.key)), 50));
        expect(await ctx.nodeRows()).toEqual(await fresh.nodeRows());
      } finally {
        await fresh.dispose();
      }
    }
    // Records written into a deleted range again: the tree grows back as usual.
    const back = [{ key: key(0x40, 1, 7), value: val(1, 1) }, { key: key(0xc1), value: val(2, 1) }];
    const m = await ctx.store.apply(++index, back);
    for (const r of back) live.set(hex(r.key), r);
    expect(m.root).toEqual(rootOf([...live.values()]));
    expect(m.count).toBe(live.size);
    // CONFLICT at an old index, and nothing changes; malformed bounds are USAGE.
    await expectCode(ctx.store.deleteRange(index, key(0), null), 'CONFLICT');
    await expectCode(ctx.store.deleteRange(index + 1, new Uint8Array(31), null), 'USAGE');
    expect(await ctx.store.meta()).toEqual(m);
    // A deletion that fails inside its transaction changes nothing (records, nodes, meta).
    const rowsBefore = await ctx.nodeRows();
    const keysBefore = await ctx.store.listKeys(key(0), null, 1000);
    await ctx.failNextApply();
    let failed = false;
    try {
      await ctx.store.deleteRange(index + 1, key(0x40), key(0x80));
    } catch (e) {
      failed = isBkvError(e);
    }
    expect(failed).toBe(true);
    await ctx.clearFailure();
    expect(await ctx.store.meta()).toEqual(m);
    expect(await ctx.nodeRows()).toEqual(rowsBefore);
    expect(await ctx.store.listKeys(key(0), null, 1000)).toEqual(keysBefore);
    // Everything.
    const all = await ctx.store.deleteRange(++index, key(0), null);
    expect(all).toEqual({ index, root: new Uint8Array(32), count: 0 });
    expect(await ctx.nodeRows()).toEqual([]);
  });

  it('export and replace: a round trip into another store, from one snapshot', async () => {
    await ctx.store.apply(1, first);
    const more = Array.from({ length: 25 }, (_, i) => ({ key: k(200 + i), value: val(200 + i) }));
    const m2 = await ctx.store.apply(2, more);
    const { meta, pages } = await ctx.store.export(7);
    expect(meta).toEqual(m2);
    // A write after the export began must not show in it.
    const it = pages[Symbol.asyncIterator]();
    const firstPage = await it.next();
    await ctx.store.apply(3, [{ key: k(999), value: val(999) }, { key: k(1), value: val(1, 3) }]);
    const exported: StoredRecord[] = [...(firstPage.value as StoredRecord[])];
    for (let r = await it.next(); !r.done; r = await it.next()) {
      expect(r.value.length).toBeLessThanOrEqual(7);
      exported.push(...r.value);
    }
    expect(exported.length).toBe(65);
    for (let i = 1; i < exported.length; i++) expect(compareKeys(exported[i - 1]!.key, exported[i]!.key)).toBeLessThan(0);
    expect(exported.find((r) => hex(r.key) === hex(k(1)))!.value).toEqual(val(1));
    expect(rootOf(exported)).toEqual(m2.root);

    const other = await engine.create();
    try {
      const progress: number[] = [];
      const got = await other.store.replace({ index: m2.index, root: m2.root }, pagesOf(exported, 10), (n) => progress.push(n));
      expect(got).toEqual(m2);
      expect(progress[progress.length - 1]).toBe(65);
      expect(await other.store.meta()).toEqual(m2);
      const keys = [k(1), k(200), k(224), k(999), k(12345)];
      const a = await other.store.read(keys);
      for (const r of a.reads) verifyRecord(m2.root, r.key, r.value, r.proof);
      expect(a.reads.map((r) => r.value)).toEqual([val(1), val(200), val(224), null, null]);
      // The replaced store keeps working: applies on top of it agree with the core.
      const b = await other.store.read([k(999)]);
      const m3 = await other.store.apply(3, [{ key: k(999), value: val(999) }]);
      expect(m3.root).toEqual(applyUpdates(m2.root, [{ key: k(999), proof: b.reads[0]!.proof }], [{ key: k(999), valueHash: valueHash(val(999)) }]));
      // And it can itself be replaced again (tables/files swapped twice).
      const again = await other.store.replace({ index: 7, root: m2.root }, pagesOf(exported, 64));
      expect(again).toEqual({ ...m2, index: 7 });
      expect((await other.store.read([k(999)])).reads[0]!.value).toBeNull();
    } finally {
      await other.dispose();
    }
  });

  it('an export left early releases its snapshot and the store keeps working', async () => {
    await ctx.store.apply(1, first);
    const { pages } = await ctx.store.export(5);
    for await (const page of pages) {
      expect(page.length).toBe(5);
      break;
    }
    const m = await ctx.store.apply(2, [{ key: k(300), value: val(300) }]);
    expect(m.count).toBe(41);
  });

  it('replace with a wrong expected root, or out-of-order records, changes nothing', async () => {
    const m1 = await ctx.store.apply(1, first);
    const keys = [k(0), k(1), k(2000)];
    const before = await ctx.store.read(keys);
    const incoming = Array.from({ length: 30 }, (_, i) => ({ key: k(2000 + i), value: val(i) })).sort((a, b) => compareKeys(a.key, b.key));
    const wrong = rootOf(incoming.slice(1));
    await expectCode(ctx.store.replace({ index: 9, root: wrong }, pagesOf(incoming, 8)), 'VERIFICATION_FAILED');
    expect(await ctx.store.meta()).toEqual(m1);
    expect(await ctx.store.read(keys)).toEqual(before);
    const shuffled = [incoming[1]!, incoming[0]!, ...incoming.slice(2)];
    await expectCode(ctx.store.replace({ index: 9, root: rootOf(incoming) }, pagesOf(shuffled, 8)), 'USAGE');
    expect(await ctx.store.meta()).toEqual(m1);
    expect(await ctx.store.read(keys)).toEqual(before);
    // The right root goes through.
    const m = await ctx.store.replace({ index: 9, root: rootOf(incoming) }, pagesOf(incoming, 8));
    expect(m).toEqual({ index: 9, root: rootOf(incoming), count: 30 });
  });

  // A memory store has nothing to reopen: this test exists for the engines that keep files or tables.
  if (engine.name !== 'memory') it('reopening after close keeps meta, records and nodes', async () => {
    const m1 = await ctx.store.apply(1, first);
    const m2 = await ctx.store.apply(2, [{ key: k(3), value: val(3, 1) }, { key: k(400), value: val(400) }]);
    const keys = [k(3), k(400), k(401), k(20)];
    const before = await ctx.store.read(keys);
    await ctx.reopen();
    expect(await ctx.store.meta()).toEqual(m2);
    expect(await ctx.store.read(keys)).toEqual(before);
    await expectCode(ctx.store.apply(2, []), 'CONFLICT');
    const m3 = await ctx.store.apply(3, [{ key: k(401), value: val(401) }]);
    expect(m3.count).toBe(m1.count + 2);
  });

  describe('a hostile database cannot make the core accept a wrong record', () => {
    let coreRoot: Uint8Array;
    let honest: Map<string, Uint8Array>;
    const keys = [...first.map((r) => r.key), k(-5), k(-6)];
    beforeEach(async () => {
      coreRoot = (await ctx.store.apply(1, first)).root;
      honest = honestOf(first);
      expect([...(await coreCheck(ctx.store, coreRoot, honest, keys))]).toEqual([]);
    });

    it('two rows with their values swapped', async () => {
      await ctx.hostile.swapValues(k(3), k(4));
      const failed = await coreCheck(ctx.store, coreRoot, honest, keys);
      expect(failed.has(hex(k(3))) && failed.has(hex(k(4)))).toBe(true);
    });

    it('a deleted row', async () => {
      await ctx.hostile.deleteRow(k(8));
      const failed = await coreCheck(ctx.store, coreRoot, honest, keys);
      expect(failed.has(hex(k(8)))).toBe(true);
    });

    it('an older copy of the whole store put back', async () => {
      const restore = await ctx.hostile.copy();
      const batch = [{ key: k(2), value: val(2, 1) }, { key: k(600), value: val(600) }];
      coreRoot = (await ctx.store.apply(2, batch)).root; // the core's root moves on
      honest = honestOf([...first, ...batch]);
      expect([...(await coreCheck(ctx.store, coreRoot, honest, [...keys, k(600)]))]).toEqual([]);
      await restore();
      const stale = await ctx.store.meta();
      expect(stale.index).toBe(1);
      const failed = await coreCheck(ctx.store, coreRoot, honest, [...keys, k(600)]);
      expect(failed.has(hex(k(2))) && failed.has(hex(k(600)))).toBe(true);
      // Every proof now hashes to the old root: nothing verifies against the core's.
      expect(failed.size).toBe(keys.length + 1);
    });

    it('a changed node hash', async () => {
      // Corrupt the root node's child on the side away from k(9): k(9)'s proof uses it as a sibling.
      const side = keyBit(k(9), 0) === 0 ? 'right' : 'left';
      await ctx.hostile.corruptNode(0, k(9), side);
      const failed = await coreCheck(ctx.store, coreRoot, honest, keys);
      expect(failed.has(hex(k(9)))).toBe(true);
    });

    // Fault injection is the memory engine's (the simulator's); the real engines are edited through SQL above.
    if (engine.name === 'memory') it('torn applies, and a forged value (memory fault injection)', async () => {
      const store = ctx.store as MemoryRecordStore;
      const batch = [{ key: k(1), value: val(1, 7) }, { key: k(700), value: val(700) }];
      const snap = store.snapshot();
      const before = await store.read(batch.map((w) => w.key));
      const nextRoot = applyUpdates(
        coreRoot,
        before.reads.map((r) => ({ key: r.key, proof: r.proof })),
        batch.map((w) => ({ key: w.key, valueHash: valueHash(w.value) })),
      );
      const nextHonest = honestOf([...first, ...batch]);
      store.tornApply(2, batch, 'records');
      let failed = await coreCheck(store, nextRoot, nextHonest, [k(1), k(700)]);
      expect(failed.size).toBe(2);
      store.rollbackTo(snap);
      store.tornApply(2, batch, 'tree');
      expect((await store.meta()).root).toEqual(nextRoot);
      failed = await coreCheck(store, nextRoot, nextHonest, [k(1), k(700)]);
      expect(failed.size).toBe(2);
      store.rollbackTo(snap);
      store.forgeValue(k(11), val(11, 66));
      failed = await coreCheck(store, coreRoot, honest, keys);
      expect([...failed]).toEqual([hex(k(11))]);
    });
  });
});
