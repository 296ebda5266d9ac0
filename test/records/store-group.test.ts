import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/shared/bytes.js';
import { MemberRecords } from '../../src/host/record-store/member-records.js';
import type { MemoryRecordStore } from '../../src/host/record-store/memory.js';
import { RecordState } from '../../src/trusted/records/record-state.js';
import type { Command } from '../../src/trusted/records/commands.js';
import { InstantLog, settle, wait } from './harness.js';

const KSF = { memory: 256, iterations: 1, parallelism: 1 };
const reg = (user: string, limit = 3): Command => ({ type: 'register', ts: 1, user, opaqueRecord: new Uint8Array(192).fill(1), wrappedKey: new Uint8Array(60).fill(2), ksf: KSF, limit });

/** A timer that does not hold the test process open: a group that waited on it would stall the test. */
const slowWait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Records the index of every store transaction (apply call), failed or not. */
function countApplies(store: MemoryRecordStore): number[] {
  const calls: number[] = [];
  const apply = store.apply.bind(store);
  store.apply = (index, writes) => {
    calls.push(index);
    return apply(index, writes);
  };
  return calls;
}

async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
}

describe('a follower writes committed batches to its store in groups', () => {
  it('several batches share one transaction; a member that starts leading flushes what is queued before its first batch', async () => {
    const log = new InstantLog();
    const a = log.addMember();
    let bLeads = false;
    // A delay no test waits for: only a full group or a flush writes.
    const b = log.addMember(true, 0, { maxDelayMs: 60_000, maxBatches: 4, when: () => !bLeads }, slowWait);
    const aCalls = countApplies(a.store);
    const bCalls = countApplies(b.store);
    const batcher = log.batcher(a);
    for (let i = 0; i < 8; i++) await batcher.execute(reg(`user-${i}`));
    await until(() => bCalls.length === 2);
    // The leader wrote each batch in its own transaction; the follower two groups of four.
    expect(aCalls).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(bCalls).toEqual([4, 8]);
    expect(b.records.writer.stats).toMatchObject({ written: 8, transactions: 2 });
    const meta = await b.store.meta();
    expect(meta.index).toBe(8);
    expect(equalBytes(meta.root, b.state.root)).toBe(true);
    expect(b.state.storeHealth()).toEqual({ state: 'ok' });

    // Three more: a group not yet full waits; the follower's store lags behind its core.
    for (let i = 8; i < 11; i++) await batcher.execute(reg(`user-${i}`));
    await new Promise((r) => setTimeout(r, 50));
    expect(bCalls).toEqual([4, 8]);
    expect(b.records.status()).toMatchObject({ state: 'writing', storeBatch: 8, coreBatch: 11 });
    expect(b.state.storeHealth()).toEqual({ state: 'behind', storeIndex: 8 });

    // b becomes the leader. Its batcher waits for the store (200 ms at most here, then it refuses
    // with store-behind); the wait asks the writer to flush, which writes the three queued batches
    // in one transaction long before the group delay.
    bLeads = true;
    const started = Date.now();
    expect(await log.batcher(b).execute(reg('after-promotion'))).toMatchObject({ kind: 'register', r: { status: 'registered' } });
    expect(Date.now() - started).toBeLessThan(1000);
    await settle(log);
    // Leading, it writes each new batch at once.
    expect(bCalls).toEqual([4, 8, 11, 12]);
    for (const m of [a, b]) {
      const mm = await m.store.meta();
      expect(mm.index).toBe(12);
      expect(equalBytes(mm.root, m.state.root)).toBe(true);
    }
  });

  it('a group lost in the middle (the transaction never commits) leaves the store at a committed prefix, and a restart catches up', async () => {
    const log = new InstantLog();
    const a = log.addMember();
    const b = log.addMember(false, 0, { maxDelayMs: 60_000, maxBatches: 4 }, slowWait);
    const bCalls = countApplies(b.store);
    const batcher = log.batcher(a);
    for (let i = 0; i < 4; i++) await batcher.execute(reg(`user-${i}`));
    await until(() => bCalls.length === 1);
    // The second group dies half-way through its transaction (records written, tree not).
    b.store.failNextApply('after-records');
    for (let i = 4; i < 8; i++) await batcher.execute(reg(`user-${i}`));
    await until(() => bCalls.length === 2);
    b.records.writer.close(); // the member is gone before it retries
    const meta = await b.store.meta();
    expect(meta.index).toBe(4);
    expect(equalBytes(meta.root, b.state.pointAt(4)!.root)).toBe(true);
    expect(meta.count).toBe(4);

    // Restart: a new core replays the log; the writer skips what the store holds (checking the
    // root of batch 4) and writes the rest as one group.
    const state = new RecordState();
    const records = new MemberRecords(b.store, state, { wait, group: { maxDelayMs: 10, maxBatches: 16 } });
    await records.open();
    log.entries.forEach((e, i) => records.onOutput({ type: 'committed', index: i + 1, entry: e, result: state.apply(i + 1, e) }));
    await until(() => records.status().state === 'in-step');
    expect(records.status()).toMatchObject({ state: 'in-step', storeBatch: 8, coreBatch: 8, problem: null });
    expect(bCalls).toEqual([4, 8, 8]);
    expect(records.writer.stats).toMatchObject({ written: 4, transactions: 1 });
    expect(equalBytes((await b.store.meta()).root, a.state.root)).toBe(true);
    expect(state.storeHealth()).toEqual({ state: 'ok' });
  });
});
