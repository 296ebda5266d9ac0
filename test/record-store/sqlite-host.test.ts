/**
 * What the SQLite engine does in the host beyond the contract: WAL checkpoints in a worker thread
 * (the log is copied back and restarted while the store keeps committing), and a node cache that
 * never hides a change another connection made to the file.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openRecordStore, type RecordStore } from '../../src/host/record-store/index.js';
import { nodeId } from '../../src/host/record-store/common.js';
import { isBkvError } from '../../src/shared/errors.js';
import { keyBit } from '../../src/shared/record-tree/index.js';

let dir: string;
let store: RecordStore | null = null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bkv-sqlite-host-'));
});
afterEach(async () => {
  await store?.close();
  store = null;
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const write = () => ({ key: randomBytes(32), value: randomBytes(200) });

describe('sqlite record store in the host', () => {
  it('checkpoints the WAL in the background: the log stops growing while commits go on', async () => {
    const path = join(dir, 'records.sqlite');
    store = await openRecordStore(`sqlite:${path}`, { checkpointEveryMs: 200 });
    let index = 0;
    for (let i = 0; i < 200; i++) await store.apply(++index, [write()]);
    const walAfterFirst = statSync(`${path}-wal`).size;
    // Without background checkpoints (the store's own threshold is 16,384 pages) the log would
    // keep every page of every commit: 8 more rounds as large as the first.
    for (let round = 0; round < 8; round++) {
      await sleep(400);
      for (let i = 0; i < 200; i++) await store.apply(++index, [write()]);
    }
    const walEnd = statSync(`${path}-wal`).size;
    expect(walEnd).toBeLessThan(walAfterFirst * 3);
    const meta = await store.meta();
    expect(meta.count).toBe(1800);
    // Every commit is in the file itself or the log: a fresh connection sees the same root.
    const db = new Database(path, { readonly: true });
    try {
      const row = db.prepare('SELECT idx, cnt, root FROM meta').get() as { idx: number; cnt: number; root: Buffer };
      expect(row.idx).toBe(index);
      expect(Buffer.from(row.root).equals(Buffer.from(meta.root))).toBe(true);
    } finally {
      db.close();
    }
  });

  it('a tree node changed by another connection is read from the file, not from the cache', async () => {
    const path = join(dir, 'records.sqlite');
    store = await openRecordStore(`sqlite:${path}`);
    const ws = Array.from({ length: 64 }, write);
    await store.apply(1, ws);
    await store.read([ws[0]!.key]); // the path is now cached
    const db = new Database(path);
    try {
      // The root's child on the other side of the key's path: its hash is in the key's proof.
      const id = Buffer.from(nodeId(0, ws[0]!.key));
      const side = keyBit(ws[0]!.key, 0) === 0 ? 'r' : 'l';
      const row = db.prepare(`SELECT ${side} AS c FROM nodes WHERE id = ?`).get(id) as { c: Buffer };
      const forged = Buffer.from(row.c);
      forged[forged.length - 1]! ^= 1;
      db.prepare(`UPDATE nodes SET ${side} = ? WHERE id = ?`).run(forged, id);
    } finally {
      db.close();
    }
    const err = await store.read([ws[0]!.key]).then(
      (r) => r,
      (e: unknown) => e,
    );
    // Either the engine refuses the tree or it hands out a proof that no longer verifies: the
    // forged child must be what it read.
    if (isBkvError(err)) {
      expect(err.code).toBe('VERIFICATION_FAILED');
    } else {
      const { verifyRecord } = await import('../../src/shared/record-tree/index.js');
      const { meta, reads } = err as Awaited<ReturnType<RecordStore['read']>>;
      const r = reads[0]!;
      expect(() => verifyRecord(meta.root, r.key, r.value, r.proof)).toThrow();
    }
  });
  it('listKeys is a range search of the primary key, not a scan', async () => {
    const path = join(dir, 'records.sqlite');
    store = await openRecordStore(`sqlite:${path}`);
    await store.apply(1, [write(), write()]);
    const db = new Database(path, { readonly: true });
    try {
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(Buffer.alloc(32), Buffer.alloc(32, 0xff), 10) as { detail: string }[]).map((r) => r.detail).join('; ');
      const between = plan('SELECT key FROM records WHERE key >= ? AND key < ? ORDER BY key LIMIT ?');
      expect(between).toMatch(/SEARCH records USING PRIMARY KEY \(key>\? AND key<\?\)/);
      expect(between).not.toMatch(/TEMP B-TREE|SCAN/);
    } finally {
      db.close();
    }
  });
});
