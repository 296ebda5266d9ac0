/**
 * A source group drops the records it moved (TransferDone, control entry version 2): the moved
 * range leaves its record tree and its store, the count follows, and a done entry whose proofs or
 * counts do not fit the root at apply is refused and changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { RootBuilder, compareKeys, valueHash, verifyProof } from '../../src/shared/record-tree/index.js';
import { containsId, genesisRange, slotFirstId, type KeyRange } from '../../src/trusted/groups/range.js';
import { decodeControl, encodeControl, type ControlEntry, type RangeDrop } from '../../src/trusted/groups/state.js';
import { CONTROL_APPLIED, CONTROL_REFUSED } from '../../src/trusted/records/record-state.js';
import { recordId } from '../../src/trusted/records/record-keys.js';
import { KEYS, settle, wait } from '../records/harness.js';
import { MemoryRecordStore } from '../../src/host/record-store/memory.js';
import { MemberRecords } from '../../src/host/record-store/member-records.js';
import type { PeerExport } from '../../src/host/record-store/store-writer.js';
import { RecordState } from '../../src/trusted/records/record-state.js';
import { GROUP_KEYS, attempt, fingerprint, makeGroup, register, storeKeys, usersIn, type TestGroup } from './harness.js';

const HALF = 2 ** 31;
/** The upper half of group 0's genesis range (of 2): a suffix, adjacent to group 1. */
const MOVING: KeyRange = { start: HALF / 2, end: HALF };
const STAYING: KeyRange = { start: 0, end: HALF / 2 };

async function records(g: TestGroup): Promise<Array<{ key: Uint8Array; value: Uint8Array }>> {
  const e = await g.store.export(64);
  const out: Array<{ key: Uint8Array; value: Uint8Array }> = [];
  for await (const page of e.pages) out.push(...page);
  return out;
}

function rootOf(recs: Array<{ key: Uint8Array; value: Uint8Array }>): Uint8Array {
  const b = new RootBuilder();
  for (const r of [...recs].sort((x, y) => compareKeys(x.key, y.key))) b.add(r.key, valueHash(r.value));
  return b.finish();
}

async function moveUpTo(src: TestGroup, dst: TestGroup, range: KeyRange): Promise<Uint8Array> {
  await dst.transfers.prepare(await src.transfers.start(range, dst.id));
  await settle(src.log);
  const keys = await storeKeys(src, range);
  for (let i = 0; i * 5 < Math.max(keys.length, 1); i++) await dst.transfers.receive(await src.transfers.chunk(i, keys.slice(i * 5, i * 5 + 5)));
  await settle(dst.log);
  return dst.transfers.accept();
}

async function setup(nMoving = 40, nStaying = 12) {
  const g0 = makeGroup(0, 2);
  const g1 = makeGroup(1, 2);
  const moving = usersIn(MOVING, nMoving, 'm');
  const staying = usersIn(STAYING, nStaying, 's');
  for (const u of [...moving, ...staying]) await g0.batcher.execute(register(u, 3));
  for (const u of usersIn(genesisRange(1, 2), 3, 'o')) await g1.batcher.execute(register(u, 3));
  await g0.batcher.execute(attempt(moving[0]!));
  await settle(g0.log);
  await settle(g1.log);
  return { g0, g1, moving, staying };
}

/** The done entry the source's leader would propose now (the coordinator's own reads). */
async function doneEntry(g: TestGroup, reply: Uint8Array): Promise<Extract<ControlEntry, { kind: 'done' }> & { drop: RangeDrop }> {
  const drop = await (g.transfers as unknown as { drop(r: KeyRange, frozen: boolean): Promise<RangeDrop> }).drop(g.state.group!.outgoing!.range, true);
  return { kind: 'done', reply, drop };
}

describe('range transfer: the source drops the records it moved', () => {
  it('after done, the source tree, count and store hold exactly the records it kept; moved ids prove absent', async () => {
    const { g0, g1, moving, staying } = await setup();
    const before = await records(g0);
    const reply = await moveUpTo(g0, g1, MOVING);
    const kept = before.filter((r) => !containsId(MOVING, r.key));
    expect(kept.length).toBe(staying.length);
    const countBefore = g0.state.count;
    expect(await g0.transfers.finish(reply)).toBe('done');
    await settle(g0.log);
    // The core: root and count of the records it kept, as a fresh build of them gives.
    expect(Buffer.from(g0.state.root).toString('hex')).toBe(Buffer.from(rootOf(kept)).toString('hex'));
    expect(g0.state.count).toBe(countBefore - moving.length);
    expect(g0.state.count).toBe(staying.length);
    // The store followed, at the done entry's index: rows gone, root and count the core's.
    const meta = await g0.store.meta();
    expect(meta).toEqual({ index: g0.log.index, root: g0.state.root, count: staying.length });
    expect(g0.state.lastBatchIndex).toBe(g0.log.index);
    expect(await g0.store.listKeys(slotFirstId(MOVING.start), slotFirstId(MOVING.end), 100)).toEqual([]);
    expect((await records(g0)).map((r) => r.key)).toEqual(kept.map((r) => r.key).sort(compareKeys));
    expect(g0.records.status().state).toBe('in-step');
    // Reads of moved ids prove absence against the core's root; kept ones prove present.
    const ids = [...moving.map((u) => recordId(KEYS, u)), ...staying.map((u) => recordId(KEYS, u))];
    const { reads } = await g0.store.read(ids);
    reads.forEach((r, i) => {
      const vh = verifyProof(g0.state.root, r.key, r.proof);
      expect(vh === null, `read ${i}`).toBe(i < moving.length);
    });
    // The group goes on: kept users are served, new ones register, the moved ones are elsewhere.
    expect((await g0.batcher.execute(attempt(staying[0]!))).kind).toBe('attempt');
    await g0.batcher.execute(register(usersIn(STAYING, staying.length + 1, 's').at(-1)!, 3));
    await settle(g0.log);
    expect(g0.state.count).toBe(staying.length + 1);
    expect((await g0.store.meta()).root).toEqual(g0.state.root);
    expect((await g1.batcher.execute(attempt(moving[1]!))).kind).toBe('attempt');

    // And back: the destination moves the range back, drops it in turn, and the source takes the records again.
    const back = await moveUpTo(g1, g0, MOVING);
    expect(await g1.transfers.finish(back)).toBe('done');
    await settle(g1.log);
    await settle(g0.log);
    expect(g1.state.count).toBe(3);
    expect((await g1.store.meta()).count).toBe(3);
    expect(g0.state.count).toBe(staying.length + 1 + moving.length);
    expect((await g0.store.meta()).root).toEqual(g0.state.root);
    expect((await g1.store.meta()).root).toEqual(g1.state.root);
    expect(await g0.batcher.execute(attempt(moving[0]!))).toMatchObject({ kind: 'attempt', r: { status: 'granted', attemptsRemaining: 1 } });
  });

  it('a whole range moved out (a merge): the source is left empty, root zero, count zero, store empty', async () => {
    const g0 = makeGroup(0, 2);
    const g1 = makeGroup(1, 2);
    const users = usersIn(genesisRange(1, 2), 9, 'w');
    for (const u of users) await g1.batcher.execute(register(u, 2));
    await settle(g1.log);
    const reply = await moveUpTo(g1, g0, genesisRange(1, 2));
    expect(await g1.transfers.finish(reply)).toBe('done');
    await settle(g1.log);
    expect(g1.state.root).toEqual(new Uint8Array(32));
    expect(g1.state.count).toBe(0);
    expect(await g1.store.meta()).toEqual({ index: g1.log.index, root: new Uint8Array(32), count: 0 });
    expect(g0.state.count).toBe(users.length);
  });

  it('a destination that refuses after chunks drops them: its tree, count and store are as before the transfer', async () => {
    const { g0, g1, moving } = await setup(25, 4);
    const rootBefore = g1.state.root;
    const countBefore = g1.state.count;
    const rowsBefore = (await records(g1)).length;
    const offer = await g0.transfers.start(MOVING, 1);
    await g1.transfers.prepare(offer);
    await settle(g0.log);
    const keys = await storeKeys(g0, MOVING);
    for (let i = 0; i * 5 < keys.length - 5; i++) await g1.transfers.receive(await g0.transfers.chunk(i, keys.slice(i * 5, i * 5 + 5)));
    await settle(g1.log);
    expect(g1.state.count).toBeGreaterThan(countBefore);
    const reply = await g1.transfers.refuse(0, 1, g0.transfers.cancel());
    await settle(g1.log);
    expect(g1.state.root).toEqual(rootBefore);
    expect(g1.state.count).toBe(countBefore);
    expect((await g1.store.meta()).root).toEqual(rootBefore);
    expect((await records(g1)).length).toBe(rowsBefore);
    expect(g1.state.group!.incoming).toBeNull();
    // The source takes the range back with its records (it never dropped them).
    expect(await g0.transfers.finish(reply)).toBe('aborted');
    expect((await g0.batcher.execute(attempt(moving[3]!))).kind).toBe('attempt');
    // A refusal of a transfer never prepared carries no drop (version 1), and a drop for it is refused.
    const never = g1.state.apply(g1.log.index + 1, encodeControl({ kind: 'refuse', source: 0, seq: 7, drop: { blocks: [], witnesses: [] } }));
    expect(never[0]).toBe(CONTROL_REFUSED);
  });

  it('counts a block over many pages, and a store that lists fewer ids than it holds is caught before anything is proposed', async () => {
    const { g0, g1, moving, staying } = await setup(300, 3);
    const reply = await moveUpTo(g0, g1, MOVING);
    // The host's listing leaves one id out: the counted records do not make the block's subtree.
    const reader = g0.records.reader as { listKeys: (f: Uint8Array, t: Uint8Array | null, l: number) => Promise<Uint8Array[]> };
    const honest = reader.listKeys;
    reader.listKeys = async (f, t, l) => (await honest(f, t, l)).filter((k) => !containsId(MOVING, k) || k[31] !== recordId(KEYS, moving[7]!)[31]);
    const index = g0.log.index;
    const err = await g0.transfers.finish(reply).catch((e: unknown) => e);
    expect(isBkvError(err, 'UNAVAILABLE')).toBe(true);
    expect(g0.log.index).toBe(index);
    expect(g0.state.group!.outgoing).not.toBeNull();
    // Repaired (here: the listing is honest again, and the store's health is reset by a clean report).
    reader.listKeys = honest;
    g0.state.storeApplied(g0.state.lastBatchIndex, (await g0.store.meta()).root);
    expect(await g0.transfers.finish(reply)).toBe('done');
    await settle(g0.log);
    expect(g0.state.count).toBe(staying.length);
    expect((await g0.store.meta()).count).toBe(staying.length);
  });

  it('the done entry carries the block proofs, the counts and a witness where a subtree becomes a single side', async () => {
    const { g0, g1, moving } = await setup();
    const reply = await moveUpTo(g0, g1, MOVING);
    const e = await doneEntry(g0, reply);
    expect(e.drop.blocks.length).toBe(1); // [2^30, 2^31) is one aligned block
    expect(e.drop.blocks[0]!.count).toBe(moving.length);
    // The left quarter keeps its records: the half above it is left with one internal side, which
    // a proof must show is not a leaf.
    expect(e.drop.witnesses.length).toBeGreaterThanOrEqual(1);
    const bytes = encodeControl(e);
    expect(bytes[1]).toBe(2); // version 2
    expect(decodeControl(bytes)).toEqual(e);
  });

  it('wrong, stale or forged drops apply as refused and change nothing (state, root, count, store)', async () => {
    const { g0, g1, staying } = await setup();
    const reply = await moveUpTo(g0, g1, MOVING);
    const good = await doneEntry(g0, reply);
    await settle(g0.log);
    const at = async () => ({ fp: fingerprint(g0), meta: await g0.store.meta(), keys: (await records(g0)).length });
    const tryApply = async (e: ControlEntry): Promise<void> => {
      const now = await at();
      const out = g0.state.apply(g0.log.index + 1, encodeControl(e));
      expect(out[0], JSON.stringify(e.kind)).toBe(CONTROL_REFUSED);
      // Nothing changed (the index is the log's, not advanced; the snapshot after the applied index is equal).
      expect(Buffer.from(g0.state.snapshot().subarray(10)).toString('hex')).toBe(now.fp.split('/')[0]!.slice(20));
      expect(await g0.store.meta()).toEqual(now.meta);
    };
    const flip = (b: Uint8Array, at = b.length - 1): Uint8Array => {
      const x = b.slice();
      x[at]! ^= 1;
      return x;
    };
    const d = good.drop;
    // Counts that do not fit what the proofs show (an internal block holds two or more records; no
    // more than the group holds). The exact number is the proposing leader's count, checked by it
    // against the block's subtree (docs/groups.md); members can check only this much.
    await tryApply({ ...good, drop: { ...d, blocks: [{ ...d.blocks[0]!, count: 1 }] } });
    await tryApply({ ...good, drop: { ...d, blocks: [{ ...d.blocks[0]!, count: 0 }] } });
    await tryApply({ ...good, drop: { ...d, blocks: [{ ...d.blocks[0]!, count: 10_000 }] } });
    // A witness missing: the deletion cannot tell a node from a leaf, and does not guess.
    await tryApply({ ...good, drop: { ...d, witnesses: [] } });
    // A forged proof, a proof of another id, a block missing.
    await tryApply({ ...good, drop: { ...d, blocks: [{ ...d.blocks[0]!, proof: flip(d.blocks[0]!.proof) }] } });
    await tryApply({ ...good, drop: { ...d, witnesses: d.witnesses.map((w) => ({ ...w, proof: flip(w.proof) })) } });
    await tryApply({ ...good, drop: { ...d, blocks: [] } });
    // A reply with a bad MAC.
    await tryApply({ ...good, reply: flip(good.reply) });
    // Stale: a batch in the kept range changes the root first; the same entry no longer fits.
    await g0.batcher.execute(attempt(staying[1]!));
    await settle(g0.log);
    await tryApply(good);
    // The coordinator reads again and finishes; a replay of either entry is then refused.
    expect(await g0.transfers.finish(reply)).toBe('done');
    await settle(g0.log);
    expect(g0.state.count).toBe(staying.length);
    await tryApply(good);
    await tryApply(await (async () => ({ kind: 'done' as const, reply }))());
    expect(isBkvError(await g0.transfers.finish(reply).catch((e: unknown) => e), 'CONFLICT')).toBe(true);
  });

  it("a member's store follows the drop like a batch: a failed delete is retried, a store rolled back to before it is repaired", async () => {
    const { g0, g1, staying } = await setup(20, 6);
    // A second member of group 0, following the same log with its own store, repairing from the first.
    const state = new RecordState({ id: 0, groups: 2, keys: GROUP_KEYS });
    const store = new MemoryRecordStore();
    const peerExports = async function* (): AsyncGenerator<PeerExport> {
      const e = await g0.store.export(8);
      yield { peer: 'member 1', meta: e.meta, pages: e.pages };
    };
    const events: string[] = [];
    const records = new MemberRecords(store, state, { wait, peerExports, onEvent: (l) => events.push(l) });
    g0.log.entries.forEach((entry, i) => {
      const result = state.apply(i + 1, entry);
      records.onOutput({ type: 'committed', index: i + 1, entry, result });
    });
    g0.log.members.push({ events, state, store, records } as never);
    await settle(g0.log);
    expect((await store.meta()).root).toEqual(g0.state.root);

    const reply = await moveUpTo(g0, g1, MOVING);
    await settle(g0.log);
    const beforeDrop = store.snapshot();
    store.failNextApply('after-nodes'); // the delete fails inside its transaction once
    expect(await g0.transfers.finish(reply)).toBe('done');
    await settle(g0.log);
    expect(events.some((l) => l.includes('write failed'))).toBe(true);
    expect(await store.meta()).toEqual({ index: g0.log.index, root: g0.state.root, count: staying.length });
    expect(state.root).toEqual(g0.state.root);
    expect(state.count).toBe(staying.length);

    // The host puts back a copy from before the drop: the next batch finds the gap, and the store is
    // repaired from the peer (whose copy has the drop).
    store.rollbackTo(beforeDrop);
    await g0.batcher.execute(attempt(staying[0]!));
    await settle(g0.log);
    expect(records.writer.stats.repairs).toBeGreaterThanOrEqual(1);
    expect(await store.meta()).toEqual(await g0.store.meta());
    expect(await store.listKeys(slotFirstId(MOVING.start), slotFirstId(MOVING.end), 10)).toEqual([]);
    expect(records.status().state).toBe('in-step');
  });

  it('an old-format done entry (version 1, no drop) still decodes and applies: the range goes, the records stay', async () => {
    const { g0, g1 } = await setup(5, 3);
    const reply = await moveUpTo(g0, g1, MOVING);
    const v1 = encodeControl({ kind: 'done', reply });
    expect(v1[1]).toBe(1);
    const root = g0.state.root;
    const count = g0.state.count;
    const out = g0.state.apply(g0.log.index + 1, v1);
    expect(out).toEqual(new Uint8Array([CONTROL_APPLIED]));
    expect(g0.state.group!.owned).toEqual(STAYING);
    expect(g0.state.root).toEqual(root);
    expect(g0.state.count).toBe(count);
  });
});
