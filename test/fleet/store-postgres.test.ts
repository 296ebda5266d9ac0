import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WrongPasswordError } from '../../src/client/sdk/errors.js';
import { isBkvError } from '../../src/shared/errors.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startUp, waitFor, type UpFleet } from './fleet-store.js';

// `bkv up --members 3 --store postgres://…` against a real PostgreSQL server: each member keeps its
// records in its own schema (bkv_member_<id>) of one database. Member processes from bin/bkv.js.
let root: string;
let db: TestPostgres;
let f: UpFleet;
const keys = new Map<string, Uint8Array>();

async function register(n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = crypto.getRandomValues(new Uint8Array(32));
    await f.client(`${prefix}${i}`).registerKey('pw', k);
    keys.set(`${prefix}${i}`, k);
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bkv-fleet-pg-'));
  db = await startPostgres();
  f = await startUp(join(root, 'fleet'), ['--store', db.url, '--snapshot-every', '8']);
  await register(6, 'p');
}, 120_000);

afterAll(async () => {
  await f?.close();
  await db?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('a bkv up fleet on PostgreSQL record stores', () => {
  it('keeps each member in its own schema, registers and recovers, and survives a killed member', async () => {
    // Followers learn the last commit with the next append or heartbeat and write their stores in
    // groups (docs/consensus.md, docs/record-store.md): wait until every member holds all six.
    const st = await waitFor('every member in step', async () => {
      const all = await f.statuses();
      return f.config.members.every((m) => {
        const s = all.get(m.id)?.store;
        return s && s.records === 6 && s.state === 'in-step' && s.storeBatch === s.coreBatch;
      }) ? all : null;
    });
    for (const m of f.config.members) {
      const s = st.get(m.id)!.store;
      expect(s.engine).toBe('postgres');
      expect(s.location).toContain(`schema=bkv_member_${m.id}`);
      expect(s.records).toBe(6);
    }
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      for (const m of f.config.members) {
        const r = await c.query(`SELECT count(*)::int AS n FROM "bkv_member_${m.id}".records`);
        expect(r.rows[0].n).toBe(6);
      }
    } finally {
      await c.end();
    }
    expect(await f.client('p0').recoverKey('pw')).toEqual(keys.get('p0'));
    const leader = await f.leader();
    await f.restart(leader);
    await register(2, 'after-kill-');
    expect(await f.client('p1').recoverKey('pw')).toEqual(keys.get('p1'));
  }, 90_000);

  it("catches a hostile edit in the leader's schema and repairs it from a peer", async () => {
    const leader = await f.leader();
    const before = (await f.statuses()).get(leader)!.store.repairs;
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const t = `"bkv_member_${leader}".records`;
      const rows = (await c.query(`SELECT key, value FROM ${t} ORDER BY key`)).rows as Array<{ key: Buffer; value: Buffer }>;
      await c.query('BEGIN');
      await c.query(`UPDATE ${t} SET value = $1 WHERE key = $2`, [rows[1]!.value, rows[0]!.key]);
      await c.query(`UPDATE ${t} SET value = $1 WHERE key = $2`, [rows[0]!.value, rows[1]!.key]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    let refused = 0;
    for (const u of [...keys.keys()]) {
      for (;;) {
        try {
          expect(await f.client(u).recoverKey('pw')).toEqual(keys.get(u));
          break;
        } catch (e) {
          if (e instanceof WrongPasswordError || !isBkvError(e, 'UNAVAILABLE')) throw e;
          refused++;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    expect(refused).toBeGreaterThan(0);
    const s = await waitFor('the repair', async () => {
      const x = (await f.statuses()).get(leader)?.store;
      return x && x.repairs > before && x.state === 'in-step' ? x : null;
    });
    expect(s.records).toBe(keys.size);
  }, 90_000);
});

describe('a bkv up fleet of replication groups on PostgreSQL', () => {
  it('keeps each member and group in its own schema (bkv_member_<id>_g<g>), each holding only its group\'s records', async () => {
    await f.close(); // one fleet at a time on this machine
    const g = await startUp(join(root, 'groups'), ['--store', db.url, '--groups', '2', '--spare-groups', '0']);
    try {
      const accounts = Array.from({ length: 8 }, (_, i) => `pg-group-${i}`);
      const escrowed = new Map<string, Uint8Array>();
      for (const a of accounts) {
        const k = crypto.getRandomValues(new Uint8Array(32));
        await g.client(a).registerKey('pw', k);
        escrowed.set(a, k);
      }
      const st = await waitFor('every member and group in step', async () => {
        const all = await g.statuses();
        return g.config.members.every((m) => {
          const gs = all.get(m.id)?.groups;
          return gs && gs.length === 2 && gs.reduce((n, x) => n + x.records, 0) === 8 && gs.every((x) => x.store.state === 'in-step' && x.store.storeBatch === x.store.coreBatch);
        }) ? all : null;
      });
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        for (const m of g.config.members) {
          for (const gs of st.get(m.id)!.groups!) {
            expect(gs.store.location).toContain(`schema=bkv_member_${m.id}_g${gs.group}`);
            const r = await c.query(`SELECT count(*)::int AS n FROM "bkv_member_${m.id}_g${gs.group}".records`);
            expect(r.rows[0].n).toBe(gs.records);
          }
        }
      } finally {
        await c.end();
      }
      for (const [a, k] of escrowed) expect(await g.client(a).recoverKey('pw')).toEqual(k);
    } finally {
      await g.close();
    }
  }, 120_000);
});
