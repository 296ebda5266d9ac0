import { describe, expect, it } from 'vitest';
import { isBkvError } from '../../src/shared/errors.js';
import { GroupKeys, encodeMessage, openMessage } from '../../src/trusted/groups/messages.js';
import { genesisRange, type KeyRange } from '../../src/trusted/groups/range.js';
import { encodeControl } from '../../src/trusted/groups/state.js';
import { CONTROL_REFUSED, RecordState } from '../../src/trusted/records/record-state.js';
import { recordId } from '../../src/trusted/records/record-keys.js';
import { KEYS, settle } from '../records/harness.js';
import { GROUP_KEYS, attempt, fingerprint, makeGroup, register, storeKeys, usersIn, type TestGroup } from './harness.js';

const HALF = 2 ** 31;
/** The upper half of group 0's genesis range (of 2): a suffix, adjacent to group 1. */
const MOVING: KeyRange = { start: HALF / 2, end: HALF };

async function refusal(p: Promise<unknown> | (() => unknown)): Promise<{ code: string; reason: unknown }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!isBkvError(e)) throw e;
    return { code: e.code, reason: e.details.reason };
  }
  throw new Error('expected a refusal');
}

async function chunks(src: TestGroup, range: KeyRange, per = 3): Promise<Uint8Array[]> {
  await settle(src.log);
  const keys = await storeKeys(src, range);
  const out: Uint8Array[] = [];
  for (let i = 0; i * per < Math.max(keys.length, 1); i++) out.push(await src.transfers.chunk(i, keys.slice(i * per, (i + 1) * per)));
  return out;
}

async function twoGroups(): Promise<{ g0: TestGroup; g1: TestGroup; moving: string[]; staying: string[] }> {
  const g0 = makeGroup(0, 2);
  const g1 = makeGroup(1, 2);
  const moving = usersIn(MOVING, 7, 'm');
  const staying = usersIn({ start: 0, end: HALF / 2 }, 3, 's');
  for (const u of [...moving, ...staying]) await g0.batcher.execute(register(u, 3));
  for (const u of usersIn(genesisRange(1, 2), 3, 'o')) await g1.batcher.execute(register(u, 3));
  await g0.batcher.execute(attempt(moving[0]!)); // one guess spent before the move
  await settle(g0.log);
  await settle(g1.log);
  return { g0, g1, moving, staying };
}

describe('range transfer between groups', () => {
  it('moves a range: nobody serves it in between, the destination serves it after with the same records and counters', async () => {
    const { g0, g1, moving, staying } = await twoGroups();
    const offer = await g0.transfers.start(MOVING, 1);
    // From the TransferOut commit the source no longer serves the range.
    expect(await refusal(g0.batcher.execute(attempt(moving[1]!)))).toEqual({ code: 'WRONG_GROUP', reason: undefined });
    expect((await g0.batcher.execute(attempt(staying[0]!))).kind).toBe('attempt');
    await g1.transfers.prepare(offer);
    expect((await refusal(g1.batcher.execute(attempt(moving[1]!)))).code).toBe('WRONG_GROUP');
    const parts = await chunks(g0, MOVING);
    // A missing chunk: the digest does not match, acceptance is refused and nothing changes.
    await g1.transfers.receive(parts[0]!);
    await settle(g1.log);
    const before = fingerprint(g1);
    expect(await refusal(g1.transfers.accept())).toEqual({ code: 'VERIFICATION_FAILED', reason: 'digest' });
    expect(fingerprint(g1)).toBe(before);
    for (const c of parts) await g1.transfers.receive(c); // resending a chunk is harmless
    await settle(g1.log);
    const reply = await g1.transfers.accept();
    expect(g1.state.group!.owned).toEqual({ start: MOVING.start, end: 2 ** 32 });
    expect(await g0.transfers.finish(reply)).toBe('done');
    expect(g0.state.group!.owned).toEqual({ start: 0, end: MOVING.start });
    // The destination serves the moved users with their counters; the source sends clients there.
    const r = await g1.batcher.execute(attempt(moving[0]!));
    expect(r).toMatchObject({ kind: 'attempt', r: { status: 'granted', attemptsRemaining: 1 } });
    const w = (await refusal(g0.batcher.execute(attempt(moving[2]!))));
    expect(w.code).toBe('WRONG_GROUP');
    const e = await g0.batcher.execute(attempt(moving[2]!)).catch((x: { details: Record<string, unknown> }) => x.details);
    expect(e).toMatchObject({ owner: 1, moving: false });
    expect(g1.state.count).toBe(3 + moving.length);
  });

  it('a transfer cancelled by the source is refused by the destination (its decision), and the source serves the range again', async () => {
    const { g0, g1, moving } = await twoGroups();
    const offer = await g0.transfers.start(MOVING, 1);
    await g1.transfers.prepare(offer);
    for (const c of await chunks(g0, MOVING)) await g1.transfers.receive(c);
    const reply = await g1.transfers.refuse(0, 1, g0.transfers.cancel());
    expect(await g0.transfers.finish(reply)).toBe('aborted');
    expect((await g0.batcher.execute(attempt(moving[1]!))).kind).toBe('attempt');
    expect((await refusal(g1.batcher.execute(attempt(moving[1]!)))).code).toBe('WRONG_GROUP');
    // The refused offer replayed later is refused: the transfer number is used up.
    const before = fingerprint(g1);
    expect(await refusal(g1.transfers.prepare(offer))).toEqual({ code: 'CONFLICT', reason: 'replayed' });
    expect(fingerprint(g1)).toBe(before);
  });

  it('refuses forged, misaddressed, replayed and out-of-phase messages with typed errors, changing nothing', async () => {
    const { g0, g1 } = await twoGroups();
    const g2 = makeGroup(2, 3);
    const offer = await g0.transfers.start(MOVING, 1);
    const snap = { g0: fingerprint(g0), g1: fingerprint(g1) };
    // A chunk before the destination prepared: out of phase.
    const [c0] = await chunks(g0, MOVING, 256);
    expect(await refusal(g1.transfers.receive(c0!))).toEqual({ code: 'CONFLICT', reason: 'wrong-phase' });
    // Forged: one bit flipped; or MAC'd under a key made from another storage key.
    const flipped = offer.slice();
    flipped[20]! ^= 1;
    expect(await refusal(g1.transfers.prepare(flipped))).toEqual({ code: 'VERIFICATION_FAILED', reason: 'bad-mac' });
    const m = openMessage(GROUP_KEYS, offer, 1);
    const forged = encodeMessage(new GroupKeys(new Uint8Array(32).fill(9)), m);
    expect(await refusal(g1.transfers.prepare(forged))).toEqual({ code: 'VERIFICATION_FAILED', reason: 'bad-mac' });
    // Addressed to group 1, delivered to group 2.
    expect(await refusal(g2.transfers.prepare(offer))).toEqual({ code: 'VERIFICATION_FAILED', reason: 'wrong-group' });
    // An offer presented as a reply to the source; a reply it never asked for.
    expect(await refusal(g0.transfers.finish(offer))).toEqual({ code: 'VERIFICATION_FAILED', reason: 'wrong-group' });
    expect(fingerprint(g0)).toBe(snap.g0);
    expect(fingerprint(g1)).toBe(snap.g1);
    // Finish the transfer, then replay every message of it.
    await g1.transfers.prepare(offer);
    for (const c of await chunks(g0, MOVING)) await g1.transfers.receive(c);
    await settle(g1.log);
    const reply = await g1.transfers.accept();
    await g0.transfers.finish(reply);
    const after = { g0: fingerprint(g0), g1: fingerprint(g1) };
    expect(await refusal(g1.transfers.prepare(offer))).toEqual({ code: 'CONFLICT', reason: 'replayed' });
    expect(await refusal(g1.transfers.receive(c0!))).toEqual({ code: 'CONFLICT', reason: 'replayed' });
    expect(await refusal(g0.transfers.finish(reply))).toEqual({ code: 'CONFLICT', reason: 'replayed' });
    expect((await refusal(g1.transfers.accept())).reason).toBe('wrong-phase');
    expect(fingerprint(g0)).toBe(after.g0);
    expect(fingerprint(g1)).toBe(after.g1);
  });

  it('a state the host rolled back to before the transfer refuses the later phases', async () => {
    const { g0, g1 } = await twoGroups();
    const srcBefore = g0.state.snapshot();
    const dstBefore = g1.state.snapshot();
    const offer = await g0.transfers.start(MOVING, 1);
    await g1.transfers.prepare(offer);
    const parts = await chunks(g0, MOVING);
    for (const c of parts) await g1.transfers.receive(c);
    await settle(g1.log);
    const reply = await g1.transfers.accept();
    // The destination's state goes back to before it prepared: chunks and acceptance are out of phase.
    const d = new RecordState({ id: 1, groups: 2, keys: GROUP_KEYS });
    d.restore(dstBefore);
    expect(d.group!.incoming).toBeNull();
    g1.state.restore(dstBefore);
    expect(await refusal(g1.transfers.receive(parts[0]!))).toEqual({ code: 'CONFLICT', reason: 'wrong-phase' });
    expect(await refusal(g1.transfers.accept())).toEqual({ code: 'CONFLICT', reason: 'wrong-phase' });
    // The source's state goes back to before TransferOut: the acceptance names no open transfer.
    g0.state.restore(srcBefore);
    const before = g0.state.snapshot().subarray(10);
    expect(await refusal(g0.transfers.finish(reply))).toEqual({ code: 'CONFLICT', reason: 'wrong-phase' });
    expect(g0.state.snapshot().subarray(10)).toEqual(before);
  });

  it('stores the host rolled back mid-transfer are caught: nothing is vouched or accepted from them', async () => {
    const { g0, g1, moving } = await twoGroups();
    const srcOld = g0.store.snapshot();
    const offer = await g0.transfers.start(MOVING, 1);
    await g1.transfers.prepare(offer);
    // The source's store goes back to before a record of the range changed: its proofs no longer
    // match the committed root, so the core vouches for nothing and has the store repaired.
    await settle(g0.log);
    const keys = await storeKeys(g0, MOVING);
    await g0.batcher.execute(register(usersIn({ start: 0, end: MOVING.start }, 1, 'z')[0]!)); // moves the root on
    await settle(g0.log);
    const srcGood = g0.store.snapshot();
    g0.store.rollbackTo(srcOld);
    expect(await refusal(g0.transfers.chunk(0, keys))).toEqual({ code: 'UNAVAILABLE', reason: 'store-corrupt' });
    expect(g0.state.storeHealth().state).toBe('corrupt');
    g0.store.rollbackTo(srcGood);
    g0.state.storeApplied(g0.state.lastBatchIndex, (await g0.store.meta()).root); // the host repaired it
    const parts = await chunks(g0, MOVING);
    for (const c of parts) await g1.transfers.receive(c);
    await settle(g1.log);
    // The destination's store goes back to before the chunks: acceptance is refused, nothing changes.
    const before = fingerprint(g1);
    const fresh = makeGroup(1, 2);
    g1.store.rollbackTo(fresh.store.snapshot());
    expect(await refusal(g1.transfers.accept())).toEqual({ code: 'UNAVAILABLE', reason: 'store-corrupt' });
    expect(fingerprint(g1)).toBe(before);
    expect(g1.state.group!.incoming).not.toBeNull();
    expect((await refusal(g1.batcher.execute(attempt(moving[0]!)))).code).toBe('WRONG_GROUP');
  });

  it('a control entry that no leader checked (forged into the log) applies as refused and changes nothing', async () => {
    const { g0, g1 } = await twoGroups();
    const offer = await g0.transfers.start(MOVING, 1);
    const bad = offer.slice();
    bad[bad.length - 1]! ^= 1;
    const before = g1.state.snapshot().subarray(10);
    for (const e of [
      encodeControl({ kind: 'prepare', offer: bad }),
      encodeControl({ kind: 'accept', source: 0, seq: 1, proofs: [] }),
      encodeControl({ kind: 'done', reply: offer }),
      encodeControl({ kind: 'out', seq: 1, range: { start: 0, end: 2 ** 32 }, dest: 0, proofs: [] }),
    ]) {
      const out = g1.state.apply(g1.log.index + 1, e);
      expect(out[0]).toBe(CONTROL_REFUSED);
    }
    expect(g1.state.snapshot().subarray(10)).toEqual(before);
  });

  it('splits to a new empty group and merges a whole range into a neighbour', async () => {
    const g0 = makeGroup(0, 2);
    const g1 = makeGroup(1, 2);
    const g2 = makeGroup(2, 2); // configured beyond the genesis count: starts empty
    expect(g2.state.group!.owned).toEqual({ start: 0, end: 0 });
    const users = usersIn(genesisRange(1, 2), 6, 'x');
    for (const u of users) await g1.batcher.execute(register(u, 2));
    const move = async (src: TestGroup, dst: TestGroup, range: KeyRange): Promise<void> => {
      await dst.transfers.prepare(await src.transfers.start(range, dst.id));
      for (const c of await chunks(src, range)) await dst.transfers.receive(c);
      await settle(dst.log);
      await src.transfers.finish(await dst.transfers.accept());
    };
    const upper = { start: 3 * 2 ** 30, end: 2 ** 32 };
    await move(g1, g2, upper); // split
    expect(g2.state.group!.owned).toEqual(upper);
    await move(g1, g0, { start: HALF, end: 3 * 2 ** 30 }); // merge what is left of group 1 into group 0
    expect(g0.state.group!.owned).toEqual({ start: 0, end: 3 * 2 ** 30 });
    expect(g1.state.group!.owned).toEqual({ start: 0, end: 0 });
    for (const u of users) {
      const owners = [g0, g1, g2].filter((g) => g.state.group!.serves(recordId(KEYS, u)));
      expect(owners.length).toBe(1);
      expect((await owners[0]!.batcher.execute(attempt(u))).kind).toBe('attempt');
    }
    // A range that is not a prefix or suffix of the source's range is refused before anything is proposed.
    const idx = g0.log.index;
    expect(await refusal(g0.transfers.start({ start: 2 ** 20, end: 2 ** 21 }, 2))).toEqual({ code: 'CONFLICT', reason: 'not-owned' });
    expect(g0.log.index).toBe(idx);
  });
});
