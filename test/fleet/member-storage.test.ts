import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { identityFromSeed } from '../../src/trusted/consensus/auth.js';
import { RaftDriver } from '../../src/trusted/consensus/driver.js';
import { RaftNode } from '../../src/trusted/consensus/node.js';
import type { PersistRecord } from '../../src/trusted/consensus/sealed-state.js';
import { FileCounter, MemberStorage, parseLog } from '../../src/host/fleet/member-storage.js';
import { EscrowOp, EscrowStateMachine, encodeCommand } from '../../src/sim/escrow-model.js';
import { Prng } from '../../src/sim/prng.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'bkv-member-storage-'));
  dirs.push(d);
  return join(d, 'state');
}

const prng = new Prng(7);
const identity = identityFromSeed(0, prng.bytes(32));
const clusterId = prng.bytes(16);
const storageKey = prng.bytes(32);
const members = new Map([[0, identity.publicKey]]);
const reg = (user: number) => encodeCommand({ op: EscrowOp.Register, user, limit: 3 });

/** A one-member fleet on real timers and real files. */
async function boot(dir: string, snapshotThreshold = 10_000) {
  const storage = await MemberStorage.open(dir);
  const sm = new EscrowStateMachine();
  const rng = new Prng(prng.u32());
  const node = new RaftNode({
    identity, members, clusterId, storageKey, counter: storage.counter, rng: () => rng.u32(), stateMachine: sm,
    boot: storage.bootState(), now: performance.now(),
    config: { electionTimeoutMin: 5, electionTimeoutMax: 10, heartbeatInterval: 5, snapshotThreshold, snapshotLogRatio: 0 },
  });
  const records: PersistRecord[] = [];
  const driver = new RaftDriver(node, {
    now: () => performance.now(),
    setTimer: (ms, fn) => {
      const t = setTimeout(fn, ms);
      return { cancel: () => clearTimeout(t) };
    },
    send: () => {},
    persist: (record, done) => {
      records.push(record);
      storage.persist(record, done);
    },
  }, { tickMs: 2, requestTimeoutMs: 5000 });
  driver.start();
  const stop = async () => {
    driver.stop();
    await storage.close();
  };
  return { storage, sm, node, driver, records, stop };
}

async function register(m: Awaited<ReturnType<typeof boot>>, from: number, to: number): Promise<void> {
  for (let u = from; u < to; u++) await m.driver.propose(reg(u));
}

describe('MemberStorage', () => {
  it('persists incrementally and a member resumes from its files', async () => {
    const dir = await tempDir();
    const a = await boot(dir, 8);
    await register(a, 0, 20);
    expect(a.node.status().snapshotIndex).toBeGreaterThan(0);
    // Appends carry only new entries; the snapshot travels only when the log was compacted.
    expect(Math.max(...a.records.map((r) => r.frames.length))).toBeLessThanOrEqual(2);
    expect(a.records.filter((r) => r.snapshot !== null).length).toBeGreaterThan(0);
    expect(a.records.filter((r) => r.snapshot !== null).length).toBeLessThan(a.records.length / 4);
    const counter = a.storage.counter.read();
    const status = a.node.status();
    await a.stop();

    const names = (await readdir(dir)).sort();
    expect(names.filter((n) => n.startsWith('snapshot-'))).toHaveLength(1);
    expect(names).toEqual(expect.arrayContaining(['counter', 'log']));
    expect(names).not.toContain('hard-state');
    // One fdatasync for the log (frames and hard state together) and one for the counter per persist.
    expect(a.storage.stats.syncs).toBeLessThanOrEqual(2 * a.storage.stats.persists + 2 * a.records.filter((r) => r.snapshot !== null).length);
    expect(new FileCounter(join(dir, 'counter')).read()).toBe(counter);

    const b = await boot(dir, 8);
    expect(b.node.status().bootNote).toBe('resumed');
    expect(b.node.status().learner).toBe(false);
    // (A single member may already have elected itself again and appended a no-op.)
    expect(b.node.status().lastIndex).toBeGreaterThanOrEqual(status.lastIndex);
    expect(b.node.status().term).toBeGreaterThanOrEqual(status.term);
    await register(b, 20, 25);
    expect(b.sm.records.size).toBe(25);
    await b.stop();
  });

  it('a layout-2 directory (hard state in its own file, variable-width counter) is taken over', async () => {
    const dir = await tempDir();
    const a = await boot(dir);
    await register(a, 0, 4);
    const status = a.node.status();
    await a.stop();
    // Rewrite the directory as layout 2 wrote it: frames in `log`, the last hard state in `hard-state`.
    const { records } = parseLog(new Uint8Array(await readFile(join(dir, 'log'))));
    const hard = records.filter((r) => r.kind === 'hard').at(-1) as { bytes: Uint8Array };
    const frames = records.filter((r) => r.kind === 'frame') as Array<{ bytes: Uint8Array }>;
    const { createHash } = await import('node:crypto');
    const rec = (payload: Uint8Array) => {
      const head = Buffer.alloc(9);
      head.writeUInt32BE(payload.length, 0);
      head[4] = 1;
      createHash('sha256').update(Uint8Array.of(1)).update(payload).digest().copy(head, 5, 0, 4);
      return Buffer.concat([head, payload]);
    };
    await writeFile(join(dir, 'log'), Buffer.concat(frames.map((f) => rec(f.bytes))));
    await writeFile(join(dir, 'hard-state'), hard.bytes);
    const counter = new FileCounter(join(dir, 'counter')).read();
    await writeFile(join(dir, 'counter'), `bkv-counter v1 ${counter}\n`);
    const b = await boot(dir);
    expect(b.node.status().bootNote).toBe('resumed');
    expect(b.node.status().lastIndex).toBeGreaterThanOrEqual(status.lastIndex);
    expect(await readdir(dir)).not.toContain('hard-state');
    expect((await readFile(join(dir, 'counter'), 'utf8')).length).toBe(36);
    await register(b, 4, 6);
    expect(b.sm.records.size).toBe(6);
    await b.stop();
  });

  it('a torn append at the end of the log is cut off and the member resumes', async () => {
    const dir = await tempDir();
    const a = await boot(dir);
    await register(a, 0, 5);
    await a.stop();
    const log = await readFile(join(dir, 'log'));
    await writeFile(join(dir, 'log'), Buffer.concat([log, Buffer.from([0, 0, 0, 90, 1, 2, 3])]));
    const b = await boot(dir);
    expect(b.node.status().bootNote).toBe('resumed');
    const after = new Uint8Array(await readFile(join(dir, 'log')));
    expect(after.length).toBeGreaterThanOrEqual(log.length);
    expect(parseLog(after).validLength).toBe(after.length); // the torn bytes are gone
    await register(b, 5, 6);
    expect(b.sm.records.size).toBe(6);
    await b.stop();
  });

  it('a tampered log frame makes the member boot as a learner', async () => {
    const dir = await tempDir();
    const a = await boot(dir);
    await register(a, 0, 6);
    await a.stop();
    const log = new Uint8Array(await readFile(join(dir, 'log')));
    const { records } = parseLog(log);
    expect(records.filter((r) => r.kind === 'frame').length).toBeGreaterThanOrEqual(7);
    // Flip one ciphertext byte of the last frame and fix the record check, as a careful host would.
    const bad = log.slice();
    let start = 0;
    let lastFrame = 0;
    for (const r of records) {
      const len = r.kind === 'truncate' ? 8 : r.bytes.length;
      if (r.kind === 'frame') lastFrame = start;
      start += 9 + len;
    }
    start = lastFrame;
    const payload = bad.subarray(start + 9, start + 9 + new DataView(bad.buffer).getUint32(start));
    payload[payload.length - 5] = (payload[payload.length - 5] as number) ^ 1;
    const { sha256 } = await import('@noble/hashes/sha2.js');
    bad.set(sha256(new Uint8Array([1, ...payload])).subarray(0, 4), start + 5);
    await writeFile(join(dir, 'log'), bad);
    const b = await boot(dir);
    expect(b.node.status().learner).toBe(true);
    expect(b.node.status().bootNote).toMatch(/log frame rejected/);
    await b.stop();
  });

  it('an older snapshot swapped in under the current name is detected', async () => {
    const dir = await tempDir();
    const a = await boot(dir, 4);
    await register(a, 0, 6);
    const firstSnap = (await readdir(dir)).find((n) => n.startsWith('snapshot-')) as string;
    const old = await readFile(join(dir, firstSnap));
    await register(a, 6, 16);
    await a.stop();
    const current = (await readdir(dir)).find((n) => n.startsWith('snapshot-')) as string;
    expect(current).not.toBe(firstSnap);
    await writeFile(join(dir, current), old);
    const b = await boot(dir, 4);
    expect(b.node.status().learner).toBe(true);
    expect(b.node.status().bootNote).toMatch(/digest/);
    await b.stop();
  });

  it('a rolled-back hard state (or a whole rolled-back directory) is detected by the counter', async () => {
    const dir = await tempDir();
    const a = await boot(dir);
    await register(a, 0, 3);
    await a.stop();
    const saved = join(dir, '..', 'saved');
    await copyFile(join(dir, 'log'), `${saved}-log`);
    const b = await boot(dir);
    await register(b, 3, 6);
    await b.stop();
    // Only the older hard states: the log cut after the last hard state of the first run.
    await copyFile(`${saved}-log`, join(dir, 'log'));
    const c = await boot(dir);
    expect(c.node.status().learner).toBe(true);
    expect(c.node.status().bootNote).toMatch(/rollback detected/);
    await c.stop();
    // The learner's own writes replaced the files; restore all of the old ones together.
    await copyFile(`${saved}-log`, join(dir, 'log'));
    const d = await boot(dir);
    expect(d.node.status().learner).toBe(true);
    expect(d.node.status().bootNote).toMatch(/rollback detected/);
    await d.stop();
  });

  it('a missing hard state while the counter is above zero is detected', async () => {
    const dir = await tempDir();
    const a = await boot(dir);
    await register(a, 0, 2);
    await a.stop();
    await rm(join(dir, 'log'));
    const b = await boot(dir);
    expect(b.node.status().learner).toBe(true);
    expect(b.node.status().bootNote).toMatch(/state missing/);
    await b.stop();
  });
});
